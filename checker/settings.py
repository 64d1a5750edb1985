"""Settings: one immutable object built at start-up and passed in (no globals).

Precedence: built-in defaults < config file < environment (``LINKHEALTH_*``) < flags.
Sections mirror ``config/linkhealth.toml``; every key there is a field here.
Environment variables are ``LINKHEALTH_<SECTION>_<KEY>`` (``LINKHEALTH_CHECK_PER_HOST=2``)
or ``LINKHEALTH_<KEY>`` for top-level keys (``LINKHEALTH_DB``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from .charsets import is_text_codec
from .errors import ConfigError

__all__ = [
    "Settings", "NotesSettings", "CheckSettings", "HealthSettings", "ArchiveSettings",
    "ReportSettings", "DaemonSettings", "ClusterSettings", "load_settings", "parse_duration",
    "parse_connect_to", "ConnectTo", "DEFAULT_CONFIG_FILE", "setting_of_env", "known_keys",
]

DEFAULT_CONFIG_FILE = Path("config/linkhealth.toml")

#: Environment variables with this prefix that are not settings (secrets, test hooks).
#: Any other LINKHEALTH_ variable is read as a setting, so a variable the project
#: documents for another purpose must use one of these prefixes (tests/test_env_names.py
#: checks every LINKHEALTH_ name in the docs, tests and benchmarks).
_ENV_NOT_SETTINGS = ("LINKHEALTH_IA_", "LINKHEALTH_TEST_")

#: The archive services linkhealth has (checker.archive.runner builds their backends).
ARCHIVE_SERVICES = ("local", "wayback")

Seconds = float  # a duration; accepts "90s", "15m", "12h", "7d", "2w" or a number of seconds


@dataclass(frozen=True, slots=True)
class ConnectTo:
    """curl's --connect-to HOST:PORT:ADDR:PORT; empty host or port matches any."""

    host: str
    port: int | None
    addr: str
    to_port: int | None


@dataclass(frozen=True)
class NotesSettings:
    paths: tuple[str, ...] = ()
    include: tuple[str, ...] = ("**/*.md", "**/*.markdown")
    exclude: tuple[str, ...] = ("**/node_modules/**", "**/.git/**", "**/_site/**", "**/.linkhealth/**")
    include_code: bool = False
    bare_www: bool = False
    site_root: str = ""
    max_file_bytes: int = 20 * 1024 * 1024
    follow_symlinks_outside: bool = False
    encoding: str = ""      # of notes that are not UTF-8; empty: detected per note


@dataclass(frozen=True)
class CheckSettings:
    concurrency: int = 64
    per_host: int = 4
    per_host_interval: Seconds = 0.0
    timeout: Seconds = 20.0
    connect_timeout: Seconds = 10.0
    retries: int = 2
    backoff_base: Seconds = 0.5
    backoff_max: Seconds = 30.0
    retry_after_cap: Seconds = 60.0
    max_redirects: int = 10
    max_body_bytes: int = 256 * 1024
    max_header_bytes: int = 64 * 1024
    user_agent: str = "linkhealth/0.1 (+https://github.com/linkhealth/linkhealth; link checker)"
    allow_private: bool = False
    connect_to: tuple[str, ...] = ()
    ca_file: str = ""
    exclude: tuple[str, ...] = ()
    recheck_after: Seconds = 0.0
    # Politeness that listens (checker.pace): refused attempts (429, 503, verification or
    # rate-limit pages) re-queued per host per run before the host is set aside, and the
    # longest pause of a host.
    host_retry_budget: int = 100
    host_set_aside_after: int = 7      # refusals in a row (each after a pause) that set a host aside
    host_pause_max: Seconds = 120.0
    head_extensions: tuple[str, ...] = (
        ".pdf", ".zip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".tar", ".whl", ".exe",
        ".dmg", ".iso", ".msi", ".deb", ".rpm", ".apk", ".jar", ".mp4", ".mp3", ".mkv",
        ".avi", ".mov", ".webm", ".flac", ".wav", ".ppt", ".pptx", ".doc", ".docx", ".xls",
        ".xlsx", ".ps", ".djvu", ".epub", ".bin", ".img",
    )
    fail_on: str = "broken"


@dataclass(frozen=True)
class HealthSettings:
    dead_after_checks: int = 3
    dead_after_hours: float = 72.0
    recheck_alive: Seconds = 7 * 86400.0
    recheck_suspect: Seconds = 12 * 3600.0
    recheck_dead: Seconds = 30 * 86400.0
    recheck_blocked: Seconds = 3 * 86400.0
    recheck_jitter: float = 0.1
    rules_files: tuple[str, ...] = ()
    builtin_rules: bool = True
    sibling_probe: bool = True


@dataclass(frozen=True)
class ArchiveSettings:
    services: tuple[str, ...] = ("local", "wayback")
    max_age_days: float = 180.0
    archive_all: bool = False
    anonymous_save: bool = False
    allow_http_keys: bool = False
    save_url: str = "https://web.archive.org/save"
    status_url: str = "https://web.archive.org/save/status"
    availability_url: str = "https://archive.org/wayback/available"
    cdx_url: str = "https://web.archive.org/cdx/search/cdx"
    web_url: str = "https://web.archive.org/web"
    captures_per_minute: float = 6.0
    captures_per_day: int = 25000
    lookups_per_minute: float = 20.0
    poll_interval: Seconds = 5.0
    poll_timeout: Seconds = 300.0
    if_not_archived_within: Seconds = 30 * 86400.0
    backoff_429: Seconds = 60.0
    breaker_failures: int = 5
    breaker_pause: Seconds = 1800.0
    max_attempts: int = 6
    local_dir: str = ""
    local_max_bytes: int = 30 * 1024 * 1024
    local_max_resources: int = 150
    local_max_seconds: Seconds = 60.0


@dataclass(frozen=True)
class ReportSettings:
    path: str = ""
    title: str = "linkhealth report"
    history_runs: int = 30


@dataclass(frozen=True)
class DaemonSettings:
    listen: str = "127.0.0.1:8787"
    token: str = ""
    scan_interval: Seconds = 3600.0
    check_interval: Seconds = 300.0
    archive_interval: Seconds = 600.0
    batch_size: int = 500
    lock_ttl: Seconds = 120.0
    grace_period: Seconds = 30.0
    log_format: str = "keyvalue"
    log_level: str = "info"
    watch: bool = True
    watch_debounce: Seconds = 0.5
    session_max_age: Seconds = 7 * 86400.0


@dataclass(frozen=True)
class ClusterSettings:
    """Cluster mode (PostgreSQL + procrastinate, `linkhealth worker`); see README "Workers"."""

    enabled: bool = False              # the daemon enqueues due links for workers instead of checking
    batch_size: int = 100              # links a slot job takes from the database at a time
    enqueue_limit: int = 200000        # due links the producer reads per cycle
    heartbeat: Seconds = 10.0          # how often a worker tells procrastinate it is alive
    stalled_after: Seconds = 60.0      # no heartbeat for this long: the worker's jobs are retried
    stalled_check: Seconds = 60.0      # how often a worker looks for stalled jobs
    report_every: Seconds = 10.0       # how often a worker writes its counters (status, /metrics)


@dataclass(frozen=True)
class Settings:
    """Every setting of linkhealth; build with :func:`load_settings`."""

    db: str = ""
    data_dir: str = ".linkhealth"
    notes: NotesSettings = field(default_factory=NotesSettings)
    check: CheckSettings = field(default_factory=CheckSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    config_file: str | None = None   # where the file layer came from, for messages

    # Derived paths: the embedded defaults live under data_dir.
    @property
    def db_url(self) -> str:
        """The database URL: ``db`` or SQLite at ``<data_dir>/linkhealth.db``."""
        return self.db or f"sqlite:///{Path(self.data_dir) / 'linkhealth.db'}"

    @property
    def archive_dir(self) -> Path:
        """Folder of the local WARC archive."""
        return Path(self.archive.local_dir or Path(self.data_dir) / "archive")

    @property
    def report_path(self) -> Path:
        """Where audit and daemon write the HTML report."""
        return Path(self.report.path or Path(self.data_dir) / "report.html")

    @property
    def connect_to(self) -> tuple[ConnectTo, ...]:
        """Parsed ``check.connect_to`` rules."""
        return tuple(parse_connect_to(v) for v in self.check.connect_to)

    def with_overrides(self, overrides: Mapping[str, Any], source: str = "command line") -> "Settings":
        """A copy with dotted-key overrides (``{"check.timeout": 5}``), validated."""
        return _apply(self, {k: v for k, v in overrides.items() if v is not None}, source)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"12h"``, ``"7d"`` or ``"2w"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 15m, 12h or 7d")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration such as 30s, 15m, 12h or 7d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_connect_to(value: str) -> ConnectTo:
    """Parse curl's ``HOST:PORT:ADDR:PORT`` (IPv6 addresses in brackets)."""
    fields_ = _split_colons(value)
    if len(fields_) != 4:
        raise ValueError(f"{value!r} is not HOST:PORT:ADDR:PORT (e.g. ::127.0.0.1:8443)")
    host, port, addr, to_port = fields_
    if not addr:
        raise ValueError(f"{value!r}: the address to connect to is empty")
    try:
        return ConnectTo(host.strip("[]").lower(), int(port) if port else None,
                         addr.strip("[]"), int(to_port) if to_port else None)
    except ValueError:
        raise ValueError(f"{value!r}: ports must be numbers") from None


def _split_colons(value: str) -> list[str]:
    out, cur, depth = [], "", 0
    for ch in value:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == ":" and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def load_settings(config_file: str | os.PathLike | None = None, *,
                  environ: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build Settings: defaults < file < environment < overrides (dotted keys).

    Without ``config_file``, ``config/linkhealth.toml`` in the working directory
    is read when it exists. A named file that does not exist is an error.
    """
    settings = Settings()
    path = Path(config_file) if config_file else None
    if path is None and DEFAULT_CONFIG_FILE.is_file():
        path = DEFAULT_CONFIG_FILE
    if path is not None:
        settings = _apply(settings, _read_toml(path), str(path))
        settings = replace(settings, config_file=str(path))
    env = os.environ if environ is None else environ
    settings = _apply(settings, _from_env(env), "environment")
    if overrides:
        settings = settings.with_overrides(overrides)
    _validate(settings)
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError("config file not found", source=str(path))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", source=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        line = _toml_error_line(str(exc))
        raise ConfigError(f"TOML syntax error: {exc}", source=str(path), line=line) from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                flat[f"{key}.{sub}"] = subvalue
        else:
            flat[key] = value
    return flat


def _toml_error_line(message: str) -> int | None:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    sections = _section_names()
    out: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith("LINKHEALTH_") or name.startswith(_ENV_NOT_SETTINGS):
            continue
        rest = name[len("LINKHEALTH_"):].lower()
        head, _, tail = rest.partition("_")
        key = f"{head}.{tail}" if head in sections and tail else rest
        out[key] = _EnvValue(value, name)
    return out


def setting_of_env(name: str) -> str | None:
    """The dotted setting key an environment variable sets (None: not read as a setting)."""
    keys = list(_from_env({name: ""}))
    return keys[0] if keys else None


def known_keys() -> set[str]:
    """Every setting key: top-level names and ``section.key``."""
    sections = _section_names()
    out = {f.name for f in fields(Settings) if f.name not in sections and f.name != "config_file"}
    for section in sections:
        out |= {f"{section}.{f.name}" for f in fields(getattr(Settings(), section))}
    return out


def _section_names() -> set[str]:
    return {f.name for f in fields(Settings) if f.default_factory is not dataclasses.MISSING}


class _EnvValue(str):
    """A string from the environment: coerced from text, and named in errors."""

    def __new__(cls, value: str, name: str) -> "_EnvValue":
        obj = super().__new__(cls, value)
        obj.var = name
        return obj


def _apply(settings: Settings, flat: Mapping[str, Any], source: str) -> Settings:
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    known_sections = _section_names()
    top_fields = {f.name: f for f in fields(Settings) if f.name not in known_sections and f.name != "config_file"}
    for key, value in flat.items():
        where = getattr(value, "var", None) or source
        section, dot, name = key.partition(".")
        if not dot:
            if key in known_sections:
                raise ConfigError(f"[{key}] must be a table", source=where, key=key)
            if key not in top_fields:
                raise ConfigError(f"unknown setting {key!r}", source=where, key=key)
            top[key] = _coerce(value, top_fields[key].type, key, where)
            continue
        if section not in known_sections:
            raise ConfigError(f"unknown section [{section}] (key {key!r})", source=where, key=key)
        current = getattr(settings, section)
        hints = {f.name: f.type for f in fields(current)}
        if name not in hints:
            raise ConfigError(f"unknown setting {key!r}; known in [{section}]: "
                              f"{', '.join(sorted(hints))}", source=where, key=key)
        sections.setdefault(section, {})[name] = _coerce(value, hints[name], key, where)
    changes: dict[str, Any] = dict(top)
    for section, values in sections.items():
        changes[section] = replace(getattr(settings, section), **values)
    return replace(settings, **changes)


def _coerce(value: Any, type_: Any, key: str, where: str) -> Any:
    hint = _resolve(type_)
    from_env = isinstance(value, _EnvValue)
    try:
        if hint == "Seconds":
            return parse_duration(str(value) if from_env else value)
        if hint is bool:
            if from_env:
                low = str(value).strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off", ""):
                    return False
                raise ValueError(f"{value!r} is not true or false")
            if not isinstance(value, bool):
                raise ValueError(f"expected true or false, got {value!r}")
            return value
        if hint is int:
            if isinstance(value, bool) or (not from_env and not isinstance(value, int)):
                raise ValueError(f"expected a whole number, got {value!r}")
            return _number(int, str(value) if from_env else value, "a whole number")
        if hint is float:
            if isinstance(value, bool) or (not from_env and not isinstance(value, (int, float))):
                raise ValueError(f"expected a number, got {value!r}")
            return _number(float, str(value) if from_env else value, "a number")
        if hint is str:
            if not isinstance(value, str):
                raise ValueError(f"expected a string, got {value!r}")
            return str(value)
        if hint == "tuple":
            if from_env:
                return tuple(v.strip() for v in str(value).split(",") if v.strip())
            if isinstance(value, str):
                return (value,)
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"expected a list of strings, got {value!r}")
            return tuple(value)
    except ValueError as exc:
        raise ConfigError(f"bad value for {key!r}: {exc}", source=where, key=key) from None
    return value


def _number(kind: type, value: Any, what: str) -> Any:
    """int() or float() of a value, with the message a file's value gets (not Python's)."""
    try:
        return kind(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise ValueError(f"expected {what}, got {value!r}") from None


def _resolve(type_: Any) -> Any:
    # Field annotations are strings (from __future__ import annotations); "Seconds"
    # stays a string because the alias is float and would otherwise lose its meaning.
    text = type_ if isinstance(type_, str) else getattr(type_, "__name__", str(type_))
    if text.startswith("tuple"):
        return "tuple"
    return {"bool": bool, "int": int, "float": float, "str": str}.get(text, text)


def _validate(settings: Settings) -> None:
    c = settings.check
    src = settings.config_file
    positive = {
        "check.concurrency": c.concurrency, "check.per_host": c.per_host,
        "check.max_redirects": c.max_redirects + 1, "check.max_body_bytes": c.max_body_bytes,
        "health.dead_after_checks": settings.health.dead_after_checks,
        "daemon.batch_size": settings.daemon.batch_size,
        "daemon.session_max_age": settings.daemon.session_max_age,
        "cluster.batch_size": settings.cluster.batch_size,
        "cluster.enqueue_limit": settings.cluster.enqueue_limit,
        "cluster.heartbeat": settings.cluster.heartbeat,
        "cluster.stalled_check": settings.cluster.stalled_check,
        "cluster.report_every": settings.cluster.report_every,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be positive, got {value}", source=src, key=key)
    if c.timeout <= 0:
        raise ConfigError("check.timeout must be positive", source=src, key="check.timeout")
    if c.retries < 0:
        raise ConfigError("check.retries cannot be negative", source=src, key="check.retries")
    if c.host_set_aside_after < 1:
        raise ConfigError("check.host_set_aside_after must be at least 1", source=src,
                          key="check.host_set_aside_after")
    if c.host_retry_budget < 0:
        raise ConfigError("check.host_retry_budget cannot be negative", source=src, key="check.host_retry_budget")
    if c.fail_on not in ("broken", "dead", "never"):
        raise ConfigError(f"check.fail_on must be broken, dead or never, got {c.fail_on!r}",
                          source=src, key="check.fail_on")
    unknown = [s for s in settings.archive.services if s not in ARCHIVE_SERVICES]
    if unknown:
        raise ConfigError(f"archive.services: unknown service {unknown[0]!r}; known: "
                          f"{', '.join(ARCHIVE_SERVICES)}", source=src, key="archive.services")
    if settings.notes.encoding and not is_text_codec(settings.notes.encoding):
        raise ConfigError(f"notes.encoding: unknown text encoding {settings.notes.encoding!r} "
                          "(use a name such as gb18030, big5, shift_jis, cp1252)", source=src, key="notes.encoding")
    if settings.cluster.stalled_after <= settings.cluster.heartbeat:
        raise ConfigError("cluster.stalled_after must be longer than cluster.heartbeat",
                          source=src, key="cluster.stalled_after")
    if settings.daemon.log_format not in ("keyvalue", "json"):
        raise ConfigError("daemon.log_format must be keyvalue or json", source=src, key="daemon.log_format")
    for value in c.connect_to:
        try:
            parse_connect_to(value)
        except ValueError as exc:
            raise ConfigError(str(exc), source=src, key="check.connect_to") from None
    for pattern in c.exclude:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"check.exclude pattern {pattern!r}: {exc}", source=src,
                              key="check.exclude") from None
