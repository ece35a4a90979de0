"""Agents: policies and the loops that turn observations into actions."""
