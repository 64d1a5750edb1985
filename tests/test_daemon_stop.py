"""The daemon starts no archive request after SIGTERM. It used to send three new Wayback
lookups 5 to 17 s after the signal while "draining jobs=archive"; now the lookup in
flight finishes, no other starts, and the daemon exits at once with the queue kept."""

from __future__ import annotations

import asyncio
import signal
import time

from fakewayback import FakeWayback
from test_daemon import DaemonProc, daemons, free_port, until, write_config, write_note  # noqa: F401


async def test_no_new_archive_request_after_sigterm(tmp_path, web, daemons):  # noqa: F811
    fake = await FakeWayback().start()
    try:
        write_note(tmp_path, "a.md", [f"http://gone.test/404?n={i}" for i in range(6)])
        port = free_port()
        config = write_config(tmp_path, "d", db=f"sqlite:///{tmp_path / 'data' / 'lh.db'}", web=web, port=port,
                              archive_interval="1s", grace_period="30s")
        text = config.read_text(encoding="utf-8").replace(
            'services = ["local"]', 'services = ["wayback"]\nlookups_per_minute = 12.0')
        for name, path in (("save_url", "/save"), ("status_url", "/save/status"),
                           ("availability_url", "/wayback/available"), ("cdx_url", "/cdx/search/cdx"),
                           ("web_url", "/web")):
            text = "\n".join(f'{name} = "{fake.base}{path}"' if line.startswith(f"{name} =") else line
                             for line in text.splitlines()) + "\n"
        config.write_text(text, encoding="utf-8")
        proc = DaemonProc(tmp_path, config, "d", port).start()
        daemons.append(proc)

        async def looked_up() -> bool:
            return fake.count("available") + fake.count("cdx") > 0

        await until(looked_up, 30, "the first Wayback lookup", proc)   # the next waits 5 s for a token
        signalled = time.monotonic()
        proc.signal(signal.SIGTERM)
        assert await proc.wait_exit(15) == 0
        stopped = time.monotonic()
        late = [t for t in fake.times("available") + fake.times("cdx") if t > signalled]
        assert late == [], f"{len(late)} Wayback requests after SIGTERM"
        assert stopped - signalled < 5, proc.tail()        # no drain of the archive job's waits
    finally:
        await fake.close()
