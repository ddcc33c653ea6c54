"""Settlement in another currency (loaded by `sitecustomize.py` beside this file).

localstripe writes every balance transaction in its charge's currency with a fee of 0. A
Stripe account may settle in another currency than it charges in, so after

    POST /_config/settlement  currency=usd&exchange_rate=1.1&fee_percent=2.9&fee_fixed=30

the balance transactions of later charges and refunds in another currency have the shape
Stripe documents for a converted payment (API reference, "The Balance Transaction object"):

- `currency`: the settlement currency (lower case);
- `exchange_rate`: the rate such that the charge's amount times the rate is `amount`;
- `amount`: the charge's (or refund's, negative) amount converted, in the settlement
  currency's minor units (both currencies are taken to have the same minor digits);
- `fee`: for a charge, `fee_percent` % of `amount`, rounded, plus `fee_fixed`, with one
  `fee_details` line `{amount, application, currency, description, type: "stripe_fee"}`;
  0 for a refund (Stripe keeps the fee);
- `net`: `amount - fee` (localstripe's own property).

`DELETE /_config/settlement` goes back to localstripe's behaviour.
"""


def _install():
    from aiohttp import web
    from localstripe import resources, server

    settlement = {}
    original = resources.BalanceTransaction.__init__

    def __init__(self, amount=None, currency=None, exchange_rate=None, type=None,
                 **kwargs):
        original(self, amount=amount, currency=currency,
                 exchange_rate=exchange_rate, type=type, **kwargs)
        to = settlement.get('currency')
        if to is None or to == currency:
            return
        rate = settlement['exchange_rate']
        self.currency = to
        self.exchange_rate = rate
        self.amount = int(round(self.amount * rate))
        if type == 'charge':
            self.fee = (int(round(self.amount * settlement['fee_percent'] / 100))
                        + settlement['fee_fixed'])
            self.fee_details = [{
                'amount': self.fee, 'application': None, 'currency': to,
                'description': 'Stripe processing fees', 'type': 'stripe_fee',
            }]

    resources.BalanceTransaction.__init__ = __init__

    async def set_settlement(request):
        data = await server.get_post_data(request) or {}
        try:
            settlement.update({
                'currency': str(data['currency']).lower(),
                'exchange_rate': float(data['exchange_rate']),
                'fee_percent': float(data.get('fee_percent', 0)),
                'fee_fixed': int(data.get('fee_fixed', 0)),
            })
        except (KeyError, ValueError):
            raise resources.UserError(400, 'Bad request')
        return web.Response()

    async def clear_settlement(request):
        settlement.clear()
        return web.Response()

    server.app.router.add_post('/_config/settlement', set_settlement)
    server.app.router.add_delete('/_config/settlement', clear_settlement)


_install()
