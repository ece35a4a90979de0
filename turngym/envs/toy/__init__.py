"""Toy environments for fast tests and first demos: a maze and a calculator tool-use task."""
