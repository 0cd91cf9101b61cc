"""The period a report covers, from its query parameters. Pure.

Plain dates are China dates and `to` includes its whole day; datetimes without a
zone are China time."""
from datetime import date, datetime, time, timedelta

from closeloop_shared.clock import CHINA

DEFAULT_LENGTH = timedelta(days=7)
# A report reads a unit's buckets of its period (a year is a dozen month documents): the
# bound keeps a request to that.
MAX_LENGTH = timedelta(days=366)
EARLIEST = datetime(2000, 1, 1, tzinfo=CHINA)
LATEST = datetime(2100, 1, 1, tzinfo=CHINA)


class BadPeriod(ValueError):
    def __init__(self, field, message):
        super().__init__(message)
        self.field, self.message = field, message


def _moment(value, field, day_end):
    try:
        if len(value) == 10:
            day = date.fromisoformat(value) + (timedelta(days=1) if day_end else timedelta())
            moment = datetime.combine(day, time.min, tzinfo=CHINA)
        else:
            moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadPeriod(field, "Not a valid date or datetime.")
    moment = moment if moment.tzinfo else moment.replace(tzinfo=CHINA)
    if not EARLIEST <= moment <= LATEST:
        raise BadPeriod(field, "Must be between 2000 and 2100.")
    return moment


def period(start, end, now):
    """[from, to) as aware datetimes; defaults: the 7 days up to now."""
    stop = _moment(end, "to", day_end=True) if end else now
    begin = _moment(start, "from", day_end=False) if start else stop - DEFAULT_LENGTH
    if begin >= stop:
        raise BadPeriod("from", "must be before to")
    if stop - begin > MAX_LENGTH:
        raise BadPeriod("from", f"a report covers at most {MAX_LENGTH.days} days")
    return begin, stop
