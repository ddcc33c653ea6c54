"""What Stripe does around refunds that localstripe (PyPI, 1.x) does not, as Stripe's API
reference describes it:

- `Idempotency-Key` on POST: a repeated key with the same path and parameters gets the first
  answer again (with `Idempotent-Replayed: true`) and does nothing more; with other
  parameters, 400 `idempotency_error`; while the first request is still running, 409
  `idempotency_error`. Answers of 5xx are not kept (Stripe lets such a request be retried).
- A refund never exceeds what is left of the charge ("Refund amount ($X) is greater than
  unrefunded amount on charge ($Y)"; a fully refunded charge: "Charge ch_... has already been
  refunded."), both 400 `invalid_request_error`.
- Each refund sends `charge.refunded` with the charge (whose `amount_refunded` is
  cumulative), through localstripe's own webhook sender (signed, about a second later).
"""

from aiohttp import web

from localstripe import resources, server
from localstripe.errors import UserError
from localstripe.webhooks import schedule_webhook

# (Authorization, Idempotency-Key) -> None while running, then (path, body, status, answer,
# content type).
_keys = {}


def _idempotency_error(status, message):
    return server.json_response(
        {'error': {'type': 'idempotency_error', 'message': message}},
        status=status)


@web.middleware
async def idempotency_middleware(request, handler):
    key = request.headers.get('Idempotency-Key')
    if request.method != 'POST' or not key:
        return await handler(request)
    body = await request.read()  # kept by aiohttp: the handler reads it again
    slot = (request.headers.get('Authorization', ''), key)
    if slot in _keys:
        saved = _keys[slot]
        if saved is None:
            return _idempotency_error(
                409, 'There is currently another in-progress request using '
                'this Stripe-Idempotency-Key. Please try again later.')
        path, params, status, answer, content_type = saved
        if (path, params) != (request.path, body):
            return _idempotency_error(
                400, 'Keys for idempotent requests can only be used with the '
                'same parameters they were first used with. Try using a key '
                "other than '%s' if you meant to execute a different "
                'request.' % key)
        resp = web.Response(status=status, body=answer,
                            content_type=content_type)
        resp.headers['Idempotent-Replayed'] = 'true'
        return resp
    _keys[slot] = None
    try:
        resp = await handler(request)
    except BaseException:
        del _keys[slot]
        raise
    if resp.status >= 500 or not isinstance(resp, web.Response):
        del _keys[slot]
    else:
        _keys[slot] = (request.path, body, resp.status, resp.body,
                       resp.content_type)
    return resp


# Outermost, so it keeps answers as sent (errors already turned into responses).
server.app.middlewares.insert(0, idempotency_middleware)


def _charge_of(charge, payment_intent):
    if payment_intent is not None:
        pi = resources.PaymentIntent._api_retrieve(payment_intent)
        return pi.latest_charge
    if charge is not None:
        return resources.Charge._api_retrieve(charge)
    return None


_refund_init = resources.Refund.__init__


def _refund_init_checked(self, charge=None, payment_intent=None, amount=None,
                         metadata=None, **kwargs):
    if not kwargs and isinstance(charge or payment_intent or 0, str):
        ch = _charge_of(charge, payment_intent)
        want = resources.try_convert_to_int(amount)
        if ch is not None and isinstance(ch.amount, int):
            left = ch.amount - ch.amount_refunded
            if left <= 0:
                raise UserError(
                    400, 'Charge %s has already been refunded.' % ch.id)
            if isinstance(want, int) and want > left:
                raise UserError(
                    400, 'Refund amount ($%d.%02d) is greater than unrefunded '
                    'amount on charge ($%d.%02d)'
                    % (want // 100, want % 100, left // 100, left % 100))
    _refund_init(self, charge=charge, payment_intent=payment_intent,
                 amount=amount, metadata=metadata, **kwargs)


resources.Refund.__init__ = _refund_init_checked

_refund_create = resources.Refund._api_create.__func__


def _refund_create_notified(cls, **data):
    refund = _refund_create(cls, **data)
    charge = resources.Charge._api_retrieve(refund.charge)
    schedule_webhook(resources.Event('charge.refunded', charge))
    return refund


resources.Refund._api_create = classmethod(_refund_create_notified)
