"""Payment method types Stripe has and localstripe (PyPI, 1.x) lacks: `us_bank_account` (ACH
Direct Debit, settles days later), `alipay` (a redirect to the wallet), `wechat_pay` (a QR code
the donor scans) and `link`, beside `card`; the refunds Stripe makes asynchronously for the
wallets; and the ACH return, which Stripe reports as a dispute that cannot be contested.

Shapes are those of Stripe's OpenAPI description (github.com/stripe/openapi):
`openapi/spec3.json` at commit af5309cae53e5f666f9686dfed306d6d3b5fdc67 (2026-07-29; the schemas
`payment_method_us_bank_account`, `payment_method_details_us_bank_account`,
`payment_method_details_wechat_pay`, `payment_method_details_card_wallet`,
`payment_method_options_wechat_pay`) and `openapi/fixtures3.json` at commit
f6c2a48fbac2819d1feba8143d942ffc65e1c0d2 (2026-08-21; the `charge`, `payment_intent`,
`refund` and `dispute` fixtures). The spec's `info.version` could not be read (the snapshot
holds the fixtures but not spec3.json itself).

What it adds, through localstripe's own objects and webhook sender (signed, about a second
later):

- `POST /v1/payment_intents` keeps `payment_method_types` (default `["card"]`; each one of
  `card, link, us_bank_account, alipay, wechat_pay`, else 400 as Stripe words it) and
  `payment_method_options`, and returns them.
- `POST /v1/payment_intents/{id}/confirm` takes `payment_method` (an id, or a test id such as
  `pm_card_visa`, or `pm_card_visa_apple_pay` for a card in an Apple Pay wallet),
  `payment_method_data[type]` (plus `[card][number|exp_month|exp_year|cvc]`,
  `[us_bank_account][...]`, `[billing_details][...]`), `return_url`,
  `payment_method_options`, `client_secret`, and the publishable `key` (then `client_secret` is
  required). A type outside the intent's `payment_method_types` is 400. Then:
  card / link succeed at once (localstripe's own path, declines as localstripe decides, as
  402 `card_error`); us_bank_account leaves a `pending` charge, intent `processing`
  (`charge.pending`, `payment_intent.processing`); alipay asks for a redirect to
  `/_test/alipay/{pi}` (`next_action.redirect_to_url`); wechat_pay shows a QR code
  (`next_action.wechat_pay_display_qr_code`); both `requires_action`
  (`payment_intent.requires_action`).
- `GET /v1/payment_intents/{id}?client_secret=...&key=pk_...` answers with the publishable key,
  as Stripe.js uses it.
- Charges carry `payment_method_details` `{type, <type>: {...}}`; `disputed`.
- Refunds carry `payment_intent`, `reason`, `failure_reason`, `failure_balance_transaction`; a
  refund of a us_bank_account, alipay or wechat_pay charge starts `pending`; every refund sends
  `refund.created`; a failed refund no longer counts in the charge's `amount_refunded`; a
  refund without `amount` takes what is left of the charge (localstripe took all of it).
- `GET /v1/disputes/{id}`, `GET /v1/disputes`.

Test hooks (not Stripe's API; no key needed; form or JSON body; they answer the object):

- `POST /_test/payment_method_types` `active=card,link`: the types the account has activated
  (all five until then); an intent asking for another is 400, as Stripe refuses a type the
  Dashboard has not activated.

- `POST /_test/payment_intents/{id}/settle` `outcome=succeeded|failed` (optional
  `failure_code`, `failure_message`): ends a `processing` (bank debit) or `requires_action`
  (alipay, wechat_pay) intent. Succeeded: charge `succeeded` with a balance transaction,
  `charge.succeeded`, `payment_intent.succeeded`. Failed: charge `failed`, intent
  `requires_payment_method` with `last_payment_error`, `charge.failed`,
  `payment_intent.payment_failed`.
- `POST /_test/payment_intents/{id}/return` (optional `reason`, default `insufficient_funds`):
  the bank returns a settled debit: a lost dispute, `charge.dispute.created` then
  `charge.dispute.closed`; answers the dispute.
- `POST /_test/refunds/{id}/settle` `outcome=succeeded|failed` (optional `failure_reason`,
  default `expired_or_canceled_card`): ends a `pending` refund; `refund.updated`,
  `charge.refund.updated`, and on failure `refund.failed`.
- `GET /_test/alipay/{id}`: the wallet's test page, with links "Authorize test payment"
  (`/_test/alipay/{id}/authorize`) and "Fail test payment" (`/_test/alipay/{id}/fail`), which
  settle the intent and redirect (303) to its `return_url` with `payment_intent`,
  `payment_intent_client_secret` and `redirect_status=succeeded|failed`.
- `GET /_test/wechat_pay/{id}` (the `hosted_instructions_url`: the QR code and the same two
  links, which answer a short page), `GET /_test/wechat_pay/{id}/qr.svg`, `.../qr.png`.
"""

import base64
import datetime
import hashlib
import html
import struct
import zlib
from urllib.parse import urlencode

from aiohttp import web

from localstripe import resources, server
from localstripe.errors import UserError
from localstripe.webhooks import schedule_webhook

TYPES = ('card', 'link', 'us_bank_account', 'alipay', 'wechat_pay')
NEW_TYPES = ('link', 'us_bank_account', 'alipay', 'wechat_pay')
WALLET_TYPES = ('alipay', 'wechat_pay')  # the donor leaves the page or scans a code
# Refunds Stripe makes later: `pending`, then `succeeded` or `failed`.
ASYNC_REFUND_TYPES = ('us_bank_account', 'alipay', 'wechat_pay')
CONFIRMABLE = ('requires_payment_method', 'requires_confirmation',
               'requires_action')
REFUND_FAILURES = ('charge_for_pending_refund_disputed', 'declined',
                   'expired_or_canceled_card', 'insufficient_funds',
                   'lost_or_stolen_card', 'merchant_request', 'unknown')


def _send(type, obj):
    schedule_webhook(resources.Event(type, obj))


def _error(status, message, param=None, code=None, type=None):
    contents = {}
    if param:
        contents['param'] = param
    if code:
        contents['code'] = code
    e = UserError(status, message, contents)
    if type:
        e.body['error']['type'] = type
    return e


def _digits(seed, n):
    h = hashlib.sha256(seed.encode('utf-8')).hexdigest()
    return str(int(h, 16))[:n]


# --- PaymentIntent: payment_method_types, payment_method_options ------------------------------

# The types this account has activated in its Dashboard (all of them unless a test says less
# through `POST /_test/payment_method_types`).
_active = set(TYPES)


def _checked_types(types):
    if types is None:
        return ['card']
    if isinstance(types, str):
        types = [types]
    if not isinstance(types, list) or not types:
        raise _error(400, 'Invalid array', param='payment_method_types')
    for t in types:
        if t not in TYPES or t not in _active:
            raise _error(
                400, 'The payment method type "%s" is invalid. Please ensure '
                'the provided type is activated in your dashboard '
                '(https://dashboard.stripe.com/account/payments/settings) and '
                'your account is enabled for any preview features that you '
                'are trying to use.' % t, param='payment_method_types')
    return list(types)


def _checked_options(options, param='payment_method_options'):
    if options is None or options == '':
        return {}
    if not isinstance(options, dict):
        raise _error(400, 'Invalid object', param=param)
    for t, value in options.items():
        if t not in TYPES or not isinstance(value, dict):
            raise _error(400, 'Received unknown parameter: %s[%s]'
                         % (param, t), param=param)
    return options


_pi_init = resources.PaymentIntent.__init__


def _pi_init_with_types(self, payment_method_types=None,
                        payment_method_options=None, return_url=None,
                        description=None, receipt_email=None, **kwargs):
    types = _checked_types(payment_method_types)
    options = _checked_options(payment_method_options)
    _pi_init(self, **kwargs)
    self.payment_method_types = types
    self.payment_method_options = options
    self.description = description
    self.receipt_email = receipt_email
    self._return_url = return_url


resources.PaymentIntent.__init__ = _pi_init_with_types
# Intents made before (none, with --from-scratch) or by other paths read as Stripe's default.
resources.PaymentIntent.payment_method_types = ['card']
resources.PaymentIntent._return_url = None

_pi_last_error = resources.PaymentIntent.last_payment_error.fget


def _last_payment_error(self):
    error = _pi_last_error(self)
    if not error:
        return error
    error = dict(error)
    pm = _payment_method_of(self.latest_charge) if self.latest_charge else None
    kind = _type_of(pm)
    error['type'] = ('card_error' if kind in ('card', 'link', None)
                     else 'invalid_request_error')
    error['payment_method'] = pm._export() if pm is not None else None
    if error.get('code') == 'card_declined':
        error.setdefault('decline_code', 'generic_decline')
    return error


resources.PaymentIntent.last_payment_error = property(_last_payment_error)


# --- PaymentMethod: the new types, a card in a wallet -----------------------------------------

_pm_init = resources.PaymentMethod.__init__


def _bank_account(params, seed):
    params = params or {}
    number = str(params.get('account_number') or '000123456789')
    routing = str(params.get('routing_number') or '110000000')
    return {
        'account_holder_type': params.get('account_holder_type') or 'individual',
        'account_type': params.get('account_type') or 'checking',
        'bank_name': 'STRIPE TEST BANK',
        'financial_connections_account': None,
        'fingerprint': resources.fingerprint(routing + number),
        'last4': '6789' if number == '000123456789' else number[-4:],
        'networks': {'preferred': 'ach', 'supported': ['ach']},
        'routing_number': routing,
        'status_details': None,
    }


def _pm_init_more_types(self, type=None, billing_details=None, metadata=None,
                        us_bank_account=None, alipay=None, wechat_pay=None,
                        link=None, **kwargs):
    if type not in NEW_TYPES:
        if us_bank_account or alipay or wechat_pay or link:
            raise _error(400, 'Bad request')
        return _pm_init(self, type=type, billing_details=billing_details,
                        metadata=metadata, **kwargs)
    if kwargs:
        raise _error(400, 'Received unknown parameter: %s'
                     % ', '.join(kwargs.keys()))
    for name, value in (('billing_details', billing_details),
                        ('us_bank_account', us_bank_account),
                        ('alipay', alipay), ('wechat_pay', wechat_pay),
                        ('link', link), ('metadata', metadata)):
        if value not in (None, '') and not isinstance(value, dict):
            raise _error(400, 'Invalid object', param=name)

    # All exceptions must be raised before this point.
    resources.StripeObject.__init__(self)

    self.type = type
    self.billing_details = billing_details or {}
    self.customer = None
    self.metadata = metadata or {}
    if type == 'us_bank_account':
        self.us_bank_account = _bank_account(us_bank_account, self.id)
    elif type == 'link':
        self.link = {'email': (link or {}).get('email')
                     or (billing_details or {}).get('email')}
    else:
        setattr(self, type, {})


resources.PaymentMethod.__init__ = _pm_init_more_types

_canonical = resources.PaymentMethod._try_get_canonical_test_article.__func__


def _canonical_more(cls, id):
    if id == 'pm_card_visa_apple_pay':
        pm = resources.PaymentMethod(
            type='card', card=dict(number='4242424242424242', exp_month='12',
                                   exp_year='2030', cvc='123'))
        pm.card['wallet'] = {'apple_pay': {}, 'dynamic_last4': '4242',
                             'type': 'apple_pay'}
        return pm
    return _canonical(cls, id)


resources.PaymentMethod._try_get_canonical_test_article = classmethod(
    _canonical_more)


def _type_of(pm):
    if pm is None:
        return None
    if getattr(pm, 'object', None) == 'card':  # a legacy card_... source
        return 'card'
    return getattr(pm, 'type', None)


def _payment_method_of(charge):
    if charge is None or not charge.payment_method:
        return None
    try:
        return resources.PaymentMethod._api_retrieve(charge.payment_method)
    except UserError:
        return None


# --- Charge: payment_method_details, disputed, amount_refunded --------------------------------

def _card_details(pm):
    card = pm.card if isinstance(pm.card, dict) else {}
    if getattr(pm, 'object', None) == 'card':  # a legacy card_... source
        card = {k: getattr(pm, k, None) for k in (
            'brand', 'country', 'exp_month', 'exp_year', 'fingerprint',
            'funding', 'last4')}
    brand = (card.get('brand') or 'visa').lower()
    return {
        'amount_authorized': None,
        'brand': brand,
        'checks': {'address_line1_check': None,
                   'address_postal_code_check': None, 'cvc_check': 'pass'},
        'country': card.get('country'),
        'exp_month': card.get('exp_month'),
        'exp_year': card.get('exp_year'),
        'fingerprint': card.get('fingerprint'),
        'funding': card.get('funding'),
        'installments': None,
        'last4': card.get('last4'),
        'mandate': None,
        'network': brand,
        'three_d_secure': None,
        'wallet': card.get('wallet'),
    }


def _payment_method_details(self):
    pm = _payment_method_of(self)
    kind = _type_of(pm)
    if kind == 'card':
        details = _card_details(pm)
    elif kind == 'us_bank_account':
        account = pm.us_bank_account
        debit = datetime.date.fromtimestamp(self.created)
        details = {
            'account_holder_type': account['account_holder_type'],
            'account_type': account['account_type'],
            'bank_name': account['bank_name'],
            'expected_debit_date': debit.isoformat(),
            'fingerprint': account['fingerprint'],
            'last4': account['last4'],
            'mandate': 'mandate_' + self.id[3:],
            'payment_reference': None,
            'routing_number': account['routing_number'],
        }
    elif kind == 'alipay':
        details = {'buyer_id': '2088' + _digits(pm.id, 12),
                   'fingerprint': resources.fingerprint(pm.id),
                   'transaction_id': _digits(self.id, 28)}
    elif kind == 'wechat_pay':
        details = {'fingerprint': resources.fingerprint(pm.id),
                   'transaction_id': _digits(self.id, 28)}
    elif kind == 'link':
        details = {'country': 'US'}
    elif kind is None:
        return None
    else:
        details = dict(getattr(pm, kind, None) or {})
    return {'type': kind, kind: details}


resources.Charge.payment_method_details = property(_payment_method_details)
resources.Charge.disputed = False


def _amount_refunded(self):
    return sum(r.amount for r in self.refunds._list
               if getattr(r, 'status', 'succeeded') not in ('failed',
                                                            'canceled'))


resources.Charge.amount_refunded = property(_amount_refunded)


# --- Confirming with a payment method type ----------------------------------------------------

def _intent_for_client(id, client_secret):
    pi = resources.PaymentIntent._api_retrieve(id)
    if client_secret != pi.client_secret:
        raise _error(400, 'The client_secret provided does not match the '
                     'client_secret associated with the PaymentIntent.',
                     param='client_secret')
    return pi


def _new_payment_method(data):
    if not isinstance(data, dict) or 'type' not in data:
        raise _error(400, 'Missing required param: payment_method_data[type].',
                     param='payment_method_data[type]')
    data = dict(data)
    for key in ('allow_redisplay', 'radar_options', 'payment_user_agent',
                'referrer', 'time_on_page'):
        data.pop(key, None)
    kind = data['type']
    if kind not in TYPES:
        _checked_types([kind])
    if kind == 'card' and isinstance(data.get('card'), dict):
        card = {k: str(v) for k, v in data['card'].items()}
        card.setdefault('cvc', '123')
        data['card'] = card
    return resources.PaymentMethod(**data)


def _require(condition, message, param):
    if not condition:
        raise _error(400, message, param=param)


def _qr(pi, base):
    code = 'weixin://wxpay/bizpayurl?pr=' + resources.random_id(12)
    pi._qr_data = code
    svg = _qr_svg(code).encode('utf-8')
    return {
        'data': code,
        'hosted_instructions_url': '%s/_test/wechat_pay/%s' % (base, pi.id),
        'image_data_url': 'data:image/svg+xml;base64,'
                          + base64.b64encode(svg).decode('ascii'),
        'image_url_png': '%s/_test/wechat_pay/%s/qr.png' % (base, pi.id),
        'image_url_svg': '%s/_test/wechat_pay/%s/qr.svg' % (base, pi.id),
    }


def _confirm_with_method(pi, pm, base):
    kind = _type_of(pm)
    if kind not in pi.payment_method_types:
        raise _error(
            400, 'The PaymentMethod provided (%s) is not allowed for this '
            'PaymentIntent. Please attach a PaymentMethod of one of the '
            'following types: %s. Alternatively update the allowed '
            'payment_method_types for this PaymentIntent to include "%s".'
            % (kind, ', '.join(pi.payment_method_types), kind),
            param='payment_method', code='payment_intent_invalid_parameter')
    if kind == 'alipay':
        _require(pi._return_url, 'A `return_url` must be specified to '
                 'confirm a PaymentIntent with an Alipay PaymentMethod.',
                 'return_url')
    if kind == 'wechat_pay':
        client = (pi.payment_method_options.get('wechat_pay') or {}).get(
            'client')
        _require(client == 'web', 'payment_method_options[wechat_pay][client]'
                 ' must be `web` to confirm a PaymentIntent with a WeChat Pay '
                 'PaymentMethod here (the test double shows a QR code).',
                 'payment_method_options[wechat_pay][client]')

    # A new attempt: forget the failed one.
    if pi.latest_charge is not None and pi.latest_charge.status == 'failed':
        pi.latest_charge = None
    pi.next_action = None
    pi._authentication_failed = False
    pi.payment_method = pm.id

    if kind in ('card', 'link'):
        try:
            pi._confirm(on_failure_now=pi._report_failure)
        except UserError as e:
            if e.code == 402:
                e.body['error']['type'] = 'card_error'
                e.body['error'].setdefault('decline_code', 'generic_decline')
                e.body['error']['payment_intent'] = pi._export()
            raise
        if pi.status == 'requires_action':
            _send('payment_intent.requires_action', pi)
    elif kind == 'us_bank_account':
        charge = resources.Charge(amount=pi.amount, currency=pi.currency,
                                  customer=pi.customer, source=pm.id)
        charge.payment_intent = pi.id
        charge.description = pi.description
        pi.latest_charge = charge
        _send('charge.pending', charge)
        _send('payment_intent.processing', pi)
    elif kind == 'alipay':
        pi.next_action = {
            'type': 'redirect_to_url',
            'redirect_to_url': {
                'url': '%s/_test/alipay/%s' % (base, pi.id),
                'return_url': pi._return_url,
            },
        }
        _send('payment_intent.requires_action', pi)
    elif kind == 'wechat_pay':
        pi.next_action = {'type': 'wechat_pay_display_qr_code',
                          'wechat_pay_display_qr_code': _qr(pi, base)}
        _send('payment_intent.requires_action', pi)


def _base(request):
    return str(request.url.origin())


async def _data(request):
    data = await server.get_post_data(request) or {}
    if not isinstance(data, dict):
        raise _error(400, 'Bad request')
    data = dict(data)
    data.update(server.unflatten_data(request.query) or {})
    for key in ('key', 'payment_user_agent', 'referrer'):
        data.pop(key, None)
    return data


async def confirm(request):
    id = request.match_info['id']
    data = await _data(request)
    expand = data.pop('expand', None)
    client_secret = data.pop('client_secret', None)
    if client_secret is not None or _publishable(request):
        pi = _intent_for_client(id, client_secret)
    else:
        pi = resources.PaymentIntent._api_retrieve(id)
    return_url = data.pop('return_url', None)
    options = _checked_options(data.pop('payment_method_options', None))
    pm_data = data.pop('payment_method_data', None)
    pm_id = data.pop('payment_method', None)
    for ignored in ('use_stripe_sdk', 'mandate_data', 'setup_future_usage',
                    'error_on_requires_action', 'off_session'):
        data.pop(ignored, None)
    if data:
        raise _error(400, 'Received unknown parameter: %s'
                     % ', '.join(sorted(data)), param=sorted(data)[0])

    if pi.status not in CONFIRMABLE:
        raise _error(
            400, 'You cannot confirm this PaymentIntent because it has a '
            'status of %s. Only a PaymentIntent with one of the following '
            'statuses may be confirmed: %s.'
            % (pi.status, ', '.join(CONFIRMABLE)),
            code='payment_intent_unexpected_state')

    if pm_data is not None and pm_id is not None:
        raise _error(400, 'You cannot specify both payment_method and '
                     'payment_method_data.', param='payment_method_data')
    if pm_data is not None:
        pm = _new_payment_method(pm_data)
    elif pm_id is not None:
        pm = resources.PaymentMethod._api_retrieve(pm_id)
    elif pi.payment_method:
        pm = resources.PaymentMethod._api_retrieve(pi.payment_method)
    else:
        raise _error(
            400, "You cannot confirm this PaymentIntent because it's missing "
            'a payment method. To confirm the PaymentIntent with a payment '
            'method, pass payment_method or payment_method_data.',
            code='payment_intent_unexpected_state')

    if return_url is not None:
        pi._return_url = return_url
    for kind, value in options.items():
        pi.payment_method_options.setdefault(kind, {}).update(value)

    _confirm_with_method(pi, pm, _base(request))
    return server.json_response(pi._export(expand=expand))


# --- Settling (test hooks) --------------------------------------------------------------------

def _succeed_charge(charge):
    txn = resources.BalanceTransaction(
        amount=charge.amount, currency=charge.currency,
        description=charge.description, exchange_rate=1.0,
        reporting_category='charge', source=charge.id, type='charge')
    charge.balance_transaction = txn.id
    charge.status = 'succeeded'
    _send('charge.succeeded', charge)


def _fail_charge(charge, code, message):
    charge.status = 'failed'
    charge.failure_code = code
    charge.failure_message = message
    _send('charge.failed', charge)


FAILURES = {
    'us_bank_account': ('insufficient_funds',
                        'The customer\'s account has insufficient funds to '
                        'cover this payment.'),
    'alipay': ('payment_intent_payment_attempt_failed',
               'The customer did not approve the payment.'),
    'wechat_pay': ('payment_intent_payment_attempt_failed',
                   'The customer did not approve the payment.'),
}


def settle_intent(pi, outcome, failure_code=None, failure_message=None):
    pm = resources.PaymentMethod._api_retrieve(pi.payment_method) \
        if pi.payment_method else None
    kind = _type_of(pm)
    waiting = ((pi.status == 'processing' and kind == 'us_bank_account') or
               (pi.status == 'requires_action' and kind in WALLET_TYPES))
    if not waiting:
        raise _error(400, 'Only a processing bank debit or an alipay or '
                     'wechat_pay intent that requires action can be settled; '
                     'this one is %s (%s).' % (pi.status, kind))
    if outcome not in ('succeeded', 'failed'):
        raise _error(400, 'outcome must be succeeded or failed',
                     param='outcome')
    if pi.latest_charge is None:
        charge = resources.Charge(amount=pi.amount, currency=pi.currency,
                                  customer=pi.customer, source=pm.id)
        charge.payment_intent = pi.id
        charge.description = pi.description
        pi.latest_charge = charge
    charge = pi.latest_charge
    pi.next_action = None
    if outcome == 'succeeded':
        _succeed_charge(charge)
        pi._on_success()
    else:
        code, message = FAILURES.get(kind, ('payment_failed', 'Failed.'))
        _fail_charge(charge, failure_code or code, failure_message or message)
        pi._report_async_failure()
    return pi


async def activate_types(request):
    """`active=card,link`: the account's activated types from now on (the Dashboard's
    switches); an intent asking for another is refused as Stripe refuses it."""
    data = await _data(request)
    wanted = [t.strip() for t in str(data.get('active', '')).split(',') if t.strip()]
    unknown = [t for t in wanted if t not in TYPES]
    if unknown:
        raise _error(400, 'Unknown payment method types: %s' % ', '.join(unknown),
                     param='active')
    _active.clear()
    _active.update(wanted)
    return server.json_response({'active': sorted(_active)})


async def settle(request):
    data = await _data(request)
    pi = resources.PaymentIntent._api_retrieve(request.match_info['id'])
    settle_intent(pi, data.get('outcome', 'succeeded'),
                  data.get('failure_code'), data.get('failure_message'))
    return server.json_response(pi._export())


def _redirect_back(pi):
    status = 'succeeded' if pi.status == 'succeeded' else 'failed'
    if pi.status in ('processing', 'requires_action'):
        status = 'pending'
    url = pi._return_url or '/'
    params = urlencode({'payment_intent': pi.id,
                        'payment_intent_client_secret': pi.client_secret,
                        'redirect_status': status})
    fragment = ''
    if '#' in url:
        url, fragment = url.split('#', 1)
        fragment = '#' + fragment
    sep = '' if url.endswith(('?', '&')) else ('&' if '?' in url else '?')
    raise web.HTTPSeeOther(url + sep + params + fragment)


def _page(title, lang, body):
    return web.Response(
        content_type='text/html', charset='utf-8',
        text='<!DOCTYPE html>\n<html lang="%s"><head><meta charset="utf-8">'
             '<meta name="viewport" content="width=device-width, '
             'initial-scale=1"><link rel="icon" href="data:,"><title>%s</title>'
             '</head><body><main>%s</main>'
             '</body></html>\n' % (lang, html.escape(title), body))


def _amount_text(pi):
    return '%s %d.%02d' % (pi.currency.upper(), pi.amount // 100,
                           pi.amount % 100)


async def alipay_page(request):
    pi = resources.PaymentIntent._api_retrieve(request.match_info['id'])
    base = '/_test/alipay/' + pi.id
    return _page('Alipay test payment page', 'en',
                 '<h1>Alipay test payment page</h1>'
                 '<p>Test payment of %s (%s).</p>'
                 '<p><a id="authorize" href="%s/authorize">Authorize test '
                 'payment</a></p><p><a id="fail" href="%s/fail">Fail test '
                 'payment</a></p>'
                 % (html.escape(_amount_text(pi)), html.escape(pi.id),
                    base, base))


def _settle_from_page(outcome):
    async def handler(request):
        pi = resources.PaymentIntent._api_retrieve(request.match_info['id'])
        if pi.status == 'requires_action':
            settle_intent(pi, outcome)
        _redirect_back(pi)
    return handler


async def wechat_page(request):
    pi = resources.PaymentIntent._api_retrieve(request.match_info['id'])
    base = '/_test/wechat_pay/' + pi.id
    return _page('WeChat Pay test payment page', 'en',
                 '<h1>WeChat Pay test payment page</h1>'
                 '<p>Test payment of %s (%s).</p>'
                 '<p><img src="%s/qr.svg" alt="WeChat Pay QR code" '
                 'width="210" height="210"></p>'
                 '<p><a id="authorize" href="%s/authorize">Authorize test '
                 'payment</a></p><p><a id="fail" href="%s/fail">Fail test '
                 'payment</a></p>'
                 % (html.escape(_amount_text(pi)), html.escape(pi.id),
                    base, base, base))


def _wechat_settle_from_page(outcome):
    async def handler(request):
        pi = resources.PaymentIntent._api_retrieve(request.match_info['id'])
        if pi.status == 'requires_action':
            settle_intent(pi, outcome)
        return _page('WeChat Pay test payment', 'en',
                     '<h1>WeChat Pay test payment</h1><p>The payment is %s.'
                     '</p>' % html.escape(pi.status))
    return handler


# --- The QR code image (a pattern, not a real QR code) -----------------------------------------

QR_SIZE = 21


def _qr_cells(text):
    bits = hashlib.sha256(text.encode('utf-8')).digest() * 2
    cells = set()
    for y in range(QR_SIZE):
        for x in range(QR_SIZE):
            i = y * QR_SIZE + x
            if bits[(i // 8) % len(bits)] >> (i % 8) & 1:
                cells.add((x, y))
    for ox, oy in ((0, 0), (QR_SIZE - 7, 0), (0, QR_SIZE - 7)):
        for y in range(-1, 8):
            for x in range(-1, 8):
                cells.discard((ox + x, oy + y))
                ring = max(abs(x - 3), abs(y - 3))
                if 0 <= x < 7 and 0 <= y < 7 and ring != 2:
                    cells.add((ox + x, oy + y))
    return cells


def _qr_svg(text):
    path = ''.join('M%d %dh1v1h-1z' % cell for cell in sorted(_qr_cells(text)))
    return ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="-2 -2 %d %d" '
            'width="250" height="250" shape-rendering="crispEdges">'
            '<rect x="-2" y="-2" width="%d" height="%d" fill="#fff"/>'
            '<path fill="#000" d="%s"/></svg>'
            % ((QR_SIZE + 4,) * 4 + (path,)))


def _png(width, height, rows):
    def chunk(kind, data):
        body = kind + data
        return (struct.pack('>I', len(data)) + body
                + struct.pack('>I', zlib.crc32(body) & 0xffffffff))
    raw = b''.join(b'\x00' + bytes(row) for row in rows)
    return (b'\x89PNG\r\n\x1a\n'
            + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0,
                                         0, 0))
            + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))


def _qr_png(text, scale=8):
    cells = _qr_cells(text)
    side = (QR_SIZE + 4) * scale
    rows = []
    for py in range(side):
        y = py // scale - 2
        rows.append([0 if (px // scale - 2, y) in cells else 255
                     for px in range(side)])
    return _png(side, side, rows)


def _qr_text(request):
    pi = resources.PaymentIntent._api_retrieve(request.match_info['id'])
    return getattr(pi, '_qr_data', None) or pi.id


async def qr_svg(request):
    return web.Response(body=_qr_svg(_qr_text(request)).encode('utf-8'),
                        content_type='image/svg+xml')


async def qr_png(request):
    return web.Response(body=_qr_png(_qr_text(request)),
                        content_type='image/png')


# --- Refunds: pending for wallets, refund.* events --------------------------------------------

_refund_init = resources.Refund.__init__


def _unrefunded(charge, payment_intent):
    try:
        if isinstance(payment_intent, str):
            charge = resources.PaymentIntent._api_retrieve(
                payment_intent).latest_charge
        elif isinstance(charge, str):
            charge = resources.Charge._api_retrieve(charge)
        else:
            return None
    except UserError:
        return None
    if charge is None or not isinstance(charge.amount, int):
        return None
    left = charge.amount - charge.amount_refunded
    return left if 0 < left < charge.amount else None


def _refund_init_async(self, *args, reason=None, **kwargs):
    if reason not in (None, '', 'duplicate', 'fraudulent',
                      'requested_by_customer'):
        raise _error(400, 'Invalid reason: must be one of duplicate, '
                     'fraudulent, or requested_by_customer', param='reason')
    if kwargs.get('amount') is None and not args:
        # Stripe refunds what is left of the charge, not its whole amount.
        left = _unrefunded(kwargs.get('charge'), kwargs.get('payment_intent'))
        if left:
            kwargs['amount'] = left
    _refund_init(self, *args, **kwargs)
    charge = resources.Charge._api_retrieve(self.charge)
    if self.payment_intent is None:
        self.payment_intent = charge.payment_intent
    self.reason = reason or None
    self.failure_reason = None
    self.failure_balance_transaction = None
    if _type_of(_payment_method_of(charge)) in ASYNC_REFUND_TYPES:
        self.status = 'pending'


resources.Refund.__init__ = _refund_init_async
resources.Refund.failure_reason = None
resources.Refund.failure_balance_transaction = None
resources.Refund.reason = None

_refund_create = resources.Refund._api_create.__func__


def _refund_create_announced(cls, **data):
    refund = _refund_create(cls, **data)
    _send('refund.created', refund)
    return refund


resources.Refund._api_create = classmethod(_refund_create_announced)


async def settle_refund(request):
    data = await _data(request)
    refund = resources.Refund._api_retrieve(request.match_info['id'])
    outcome = data.get('outcome', 'succeeded')
    if outcome not in ('succeeded', 'failed'):
        raise _error(400, 'outcome must be succeeded or failed',
                     param='outcome')
    if refund.status != 'pending':
        raise _error(400, 'Refund %s is %s, not pending.'
                     % (refund.id, refund.status))
    if outcome == 'succeeded':
        refund.status = 'succeeded'
    else:
        reason = data.get('failure_reason') or 'expired_or_canceled_card'
        if reason not in REFUND_FAILURES:
            raise _error(400, 'failure_reason must be one of '
                         + ', '.join(REFUND_FAILURES), param='failure_reason')
        txn = resources.BalanceTransaction(
            amount=refund.amount, currency=refund.currency,
            description='REFUND FAILURE', exchange_rate=1.0,
            reporting_category='refund', source=refund.id, type='refund')
        txn.type = 'refund_failure'
        txn.reporting_category = 'refund_failure'
        refund.status = 'failed'
        refund.failure_reason = reason
        refund.failure_balance_transaction = txn.id
    _send('refund.updated', refund)
    _send('charge.refund.updated', refund)
    if outcome == 'failed':
        _send('refund.failed', refund)
    return server.json_response(refund._export())


# --- Disputes: the ACH return ----------------------------------------------------------------

class Dispute(resources.StripeObject):
    object = 'dispute'
    _id_prefix = 'dp_'

    def __init__(self, charge=None, reason='insufficient_funds', **kwargs):
        if kwargs or not isinstance(charge, resources.Charge):
            raise _error(400, 'Bad request')
        # All exceptions must be raised before this point.
        super().__init__()
        pm = _payment_method_of(charge)
        kind = _type_of(pm) or 'card'
        self.amount = charge.amount
        self.balance_transactions = []
        self.charge = charge.id
        self.currency = charge.currency
        self.evidence = {k: None for k in (
            'access_activity_log', 'billing_address', 'cancellation_policy',
            'cancellation_policy_disclosure', 'cancellation_rebuttal',
            'customer_communication', 'customer_email_address',
            'customer_name', 'customer_purchase_ip', 'customer_signature',
            'duplicate_charge_documentation', 'duplicate_charge_explanation',
            'duplicate_charge_id', 'product_description', 'receipt',
            'refund_policy', 'refund_policy_disclosure',
            'refund_refusal_explanation', 'service_date',
            'service_documentation', 'shipping_address', 'shipping_carrier',
            'shipping_date', 'shipping_documentation',
            'shipping_tracking_number', 'uncategorized_file',
            'uncategorized_text')}
        self.evidence_details = {'due_by': None, 'has_evidence': False,
                                 'past_due': False, 'submission_count': 0}
        self.is_charge_refundable = False
        self.metadata = {}
        self.payment_intent = charge.payment_intent
        self.payment_method_details = {'type': kind, kind: {}}
        self.reason = reason
        self.status = 'lost'

    @classmethod
    def _api_create(cls, **data):
        raise UserError(405, 'Method Not Allowed')

    @classmethod
    def _api_update(cls, id, **data):
        raise UserError(405, 'Method Not Allowed')

    @classmethod
    def _api_delete(cls, id):
        raise UserError(405, 'Method Not Allowed')


async def return_debit(request):
    data = await _data(request)
    pi = resources.PaymentIntent._api_retrieve(request.match_info['id'])
    charge = pi.latest_charge
    if pi.status != 'succeeded' or charge is None:
        raise _error(400, 'Only a succeeded payment can be returned; this '
                     'one is %s.' % pi.status)
    if charge.disputed:
        raise _error(400, 'Charge %s is already disputed.' % charge.id)
    dispute = Dispute(charge=charge,
                      reason=data.get('reason') or 'insufficient_funds')
    charge.disputed = True
    _send('charge.dispute.created', dispute)
    _send('charge.dispute.closed', dispute)
    return server.json_response(dispute._export())


# --- Publishable-key access and routing ------------------------------------------------------

def _publishable(request):
    key = request.query.get('key', '')
    return key.startswith('pk_') or request.get('_peer_pk', False)


_auth = server.auth_middleware


@web.middleware
async def auth_with_publishable_key(request, handler):
    """Stripe.js reads and confirms an intent with the publishable key and the intent's
    client secret; the `/_test/` pages are opened by the donor's browser."""
    if request.path.startswith('/_test/'):
        return await handler(request)
    if request.path.startswith('/v1/payment_intents/pi_'):
        parts = request.path.split('/')
        if request.method == 'POST':
            data = await server.get_post_data(request, remove_auth=False)
        else:
            data = server.unflatten_data(request.query)
        data = data if isinstance(data, dict) else {}
        key = data.get('key')
        routed = (len(parts) == 4 and request.method == 'GET') or (
            len(parts) == 5 and parts[4] == 'confirm' and
            request.method == 'POST')
        if (routed and isinstance(key, str) and key.startswith('pk_') and
                server.get_api_key(request) is None):
            request['_peer_pk'] = True
            _intent_for_client(parts[3], data.get('client_secret'))
            return await handler(request)
    return await _auth(request, handler)


@web.middleware
async def confirm_middleware(request, handler):
    route = request.match_info.route
    resource = getattr(route, 'resource', None)
    if (request.method == 'POST' and resource is not None and
            resource.canonical == '/v1/payment_intents/{id}/confirm'):
        return await confirm(request)
    return await handler(request)


_middlewares = server.app.middlewares
_middlewares[_middlewares.index(_auth)] = auth_with_publishable_key
_middlewares.append(confirm_middleware)

_router = server.app.router
_router.add_post('/_test/payment_method_types', activate_types)
_router.add_post('/_test/payment_intents/{id}/settle', settle)
_router.add_post('/_test/payment_intents/{id}/return', return_debit)
_router.add_post('/_test/refunds/{id}/settle', settle_refund)
_router.add_get('/_test/alipay/{id}', alipay_page)
for _outcome, _verb in (('succeeded', 'authorize'), ('failed', 'fail')):
    _router.add_route('*', '/_test/alipay/{id}/' + _verb,
                      _settle_from_page(_outcome))
    _router.add_route('*', '/_test/wechat_pay/{id}/' + _verb,
                      _wechat_settle_from_page(_outcome))
_router.add_get('/_test/wechat_pay/{id}', wechat_page)
_router.add_get('/_test/wechat_pay/{id}/qr.svg', qr_svg)
_router.add_get('/_test/wechat_pay/{id}/qr.png', qr_png)
for _method, _url, _func in (
        ('GET', '/v1/disputes/{id}', server.api_retrieve),
        ('GET', '/v1/disputes', server.api_list_all)):
    _router.add_route(_method, _url, _func(Dispute, _url))
