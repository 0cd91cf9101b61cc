"""Rarely changed reference data (routing's SLA policies and duty rosters, intake's
integrations by bus user) kept in the process for a few seconds, so a message does not
read them again each time. What this process changes shows at once (its writer calls
`forget`); what another replica changes shows within the lifetime given
(REFERENCE_CACHE_SECONDS). Keys are tuples whose first item names the collection
(`Collection.full_name`), so two databases in one process never share entries."""
import time


class TimedCache:
    def __init__(self):
        self._entries = {}      # key -> (expires, value)
        self._generations = {}  # scope -> how often it was forgotten

    def get(self, key, load, seconds):
        """The value under `key`, from `load()` when absent or older than `seconds`
        (0: never kept)."""
        if seconds <= 0:
            return load()
        now = time.monotonic()
        found = self._entries.get(key)
        if found is not None and found[0] > now:
            return found[1]
        generation = self._generations.get(key[0], 0)
        value = load()
        # A forget() while load() ran means the value may predate that write: not kept.
        if self._generations.get(key[0], 0) == generation:
            self._entries[key] = (now + seconds, value)
        return value

    def forget(self, scope):
        """Drop every entry of `scope` (a collection's full name) after a write to it."""
        self._generations[scope] = self._generations.get(scope, 0) + 1
        for key in [k for k in self._entries if k[0] == scope]:
            self._entries.pop(key, None)
