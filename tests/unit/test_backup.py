"""deploy/backup.py without infrastructure: retention (never the newest backup, partial
ones cleaned up), which backups count as complete, and the settings' defaults."""
from datetime import datetime, timedelta, timezone

from deploy import backup

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)


def make(root, moment, complete=True):
    path = root / (backup.stamp_of(moment) + ("" if complete else backup.PARTIAL))
    path.mkdir()
    if complete:
        (path / "manifest.json").write_text("{}")
    return path.name


def test_retention_deletes_what_is_older_than_the_days_kept(tmp_path):
    old = make(tmp_path, NOW - timedelta(days=15))
    kept = make(tmp_path, NOW - timedelta(days=13))
    newest = make(tmp_path, NOW)
    assert backup.prune(tmp_path, 14, NOW) == [old]
    assert backup.complete_backups(tmp_path) == [kept, newest]


def test_the_newest_backup_is_kept_however_old(tmp_path):
    only = make(tmp_path, NOW - timedelta(days=40))
    assert backup.prune(tmp_path, 14, NOW) == []
    assert backup.complete_backups(tmp_path) == [only]


def test_a_partial_backup_is_not_complete_and_goes_when_old(tmp_path):
    crashed = make(tmp_path, NOW - timedelta(days=20), complete=False)
    recent_crash = make(tmp_path, NOW - timedelta(hours=1), complete=False)
    (tmp_path / "lost+found").mkdir()  # not a backup: left alone
    assert backup.complete_backups(tmp_path) == []
    assert backup.prune(tmp_path, 14, NOW) == [crashed]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["lost+found", recent_crash])


def test_empty_settings_take_the_defaults_as_compose_passes_unset_variables():
    config = backup.settings({"BACKUP_RETENTION_DAYS": "", "RABBITMQ_VHOST": "", "MONGO_DB_PREFIX": "acme"})
    assert (config["BACKUP_RETENTION_DAYS"], config["BACKUP_INTERVAL_SECONDS"]) == ("14", "86400")
    assert (config["RABBITMQ_VHOST"], config["MONGO_DB_PREFIX"], config["BACKUP_DIR"]) == ("", "acme", "/backups")
    assert backup._definitions_path(config) == "/api/definitions"
    assert backup._definitions_path(dict(config, RABBITMQ_VHOST="/")) == "/api/definitions/%2F"


def test_stamps_are_utc_and_read_back():
    assert backup.stamp_of(NOW) == "20261125T030000Z" and backup.time_of("20261125T030000Z") == NOW
