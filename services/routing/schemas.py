"""Bodies of the staff actions on a case (POST /v1/cases/{id}/...)."""
from marshmallow import RAISE, Schema, fields, validate

from closeloop_shared.events import REFUND_OPTIONS, REMEDY_TYPES


class Strict(Schema):
    class Meta:
        unknown = RAISE


class ActionIn(Strict):
    actor = fields.String(required=True, validate=validate.Length(1, 64))  # staff id


class FirstResponseIn(ActionIn):
    note = fields.String(required=True, validate=validate.Length(1, 2000))


class ReportIn(ActionIn):
    summary = fields.String(required=True, validate=validate.Length(1, 10000))


class RemedyIn(Strict):
    type = fields.String(required=True, validate=validate.OneOf(REMEDY_TYPES))
    refund_option = fields.String(load_default=None, allow_none=True,
                                  validate=validate.OneOf(REFUND_OPTIONS))
    amount = fields.Decimal(load_default=None, allow_none=True, places=2,
                            validate=validate.Range(min=0, max=1_000_000))


class ResolveIn(ActionIn):
    remedy = fields.Nested(RemedyIn, required=True)
    note = fields.String(load_default="", validate=validate.Length(max=2000))


class ReopenIn(ActionIn):
    reason = fields.String(required=True, validate=validate.Length(1, 2000))
