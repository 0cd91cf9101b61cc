"""Which stores routing re-announces at once after an organisation change
(calendar_flows.stores_to_announce): a time zone changed, or a new store; and the
announcement then carries the new zone."""
from datetime import datetime, timezone

from closeloop_shared import org
from services.routing import calendar_flows, organisation
from tests.fixtures import ROOT

ORG = org.load(ROOT / "deploy/seeds/org.yaml")
STORE = "SH-XH-001"
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)


class NoRecords:
    """routing's calendar collections with nothing saved: default hours, bundled years."""

    def store(self, store_id):
        return None

    def brand(self, brand_id):
        return None

    def years(self):
        return []


def test_a_time_zone_change_is_announced_at_once_and_only_for_that_store():
    moved = organisation.update_store(ORG, STORE, {"timezone": "Asia/Urumqi"})
    assert calendar_flows.stores_to_announce(ORG, moved) == [STORE]
    (announced,) = calendar_flows.announcements(NoRecords(), moved, [STORE], NOW)
    assert announced["store_id"] == STORE and announced["timezone"] == "Asia/Urumqi"


def test_other_changes_of_a_store_wait_for_the_periodic_announcement():
    renamed = organisation.update_store(ORG, STORE, {"name": "上海徐汇旗舰店"})
    assert calendar_flows.stores_to_announce(ORG, renamed) == []
    same_zone = organisation.update_store(ORG, STORE, {"timezone": ORG.stores[STORE].timezone})
    assert calendar_flows.stores_to_announce(ORG, same_zone) == []


def test_a_new_store_is_announced_at_once():
    region_id = ORG.stores[STORE].region_id
    added = organisation.add_store(ORG, "SH-NEW-009", "上海新店", region_id, "Asia/Shanghai")
    assert calendar_flows.stores_to_announce(ORG, added) == ["SH-NEW-009"]
