"""``RemoteEnvPool``: spread sessions over several env servers of the same env.

Each new env goes to the next URL in turn (round robin); a server that cannot be reached or is full
is skipped for that env and the next one is tried, so one server down or saturated does not stop
new episodes while another has room. Every URL must serve the same env id (checked on first use).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from typing import Any

from turngym.envs.remote import RemoteEnv
from turngym.envs.remote_async import AsyncRemoteEnv
from turngym.errors import ConfigError, EnvError


class RemoteEnvPool:
    """Makes :class:`RemoteEnv` / :class:`AsyncRemoteEnv` clients spread over ``urls``.

    ``client_kwargs`` go to every client (``transport``, ``timeout_s``, ``retries``, ``token``, ...).
    ``placed`` counts the sessions opened on each URL.
    """

    def __init__(self, urls: Sequence[str], **client_kwargs: Any) -> None:
        if not urls:
            raise ConfigError("RemoteEnvPool needs at least one server URL")
        self.urls = list(dict.fromkeys(urls))
        self._kwargs = client_kwargs
        self._turn = itertools.cycle(range(len(self.urls)))
        self.placed: Counter[str] = Counter()
        self.env_id: str | None = None

    def _order(self) -> list[str]:
        start = next(self._turn)
        return self.urls[start:] + self.urls[:start]

    def _placed(self, url: str, env_id: str) -> None:
        if self.env_id is None:
            self.env_id = env_id
        elif env_id != self.env_id:
            raise ConfigError(f"the pool serves {self.env_id}, but {url} serves {env_id}")
        self.placed[url] += 1

    def make(self) -> RemoteEnv:
        """A new synchronous env on the next server that accepts a session."""
        failures = []
        for url in self._order():
            try:
                env = RemoteEnv(url, **self._kwargs)
            except EnvError as exc:
                failures.append(f"{url}: {exc}")
                continue
            try:
                self._placed(url, env.env_id)
            except ConfigError:
                env.close()
                raise
            return env
        raise EnvError("no server in the pool accepted a session: " + "; ".join(failures))

    async def open(self) -> AsyncRemoteEnv:
        """A new async env on the next server that accepts a session."""
        failures = []
        for url in self._order():
            try:
                env = await AsyncRemoteEnv.open(url, **self._kwargs)
            except EnvError as exc:
                failures.append(f"{url}: {exc}")
                continue
            try:
                self._placed(url, env.env_id)
            except ConfigError:
                await env.close()
                raise
            return env
        raise EnvError("no server in the pool accepted a session: " + "; ".join(failures))
