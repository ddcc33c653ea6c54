"""The Payment Element of Stripe.js (`elements({clientSecret})`, `create('payment')`,
`elements.submit()`, `stripe.confirmPayment()`), which localstripe's fake Stripe.js (PyPI, 1.x)
lacks: `GET /js.stripe.com/v3/` answers localstripe's script followed by `payment-element.js`
beside this file, a test double of the subset of that API crowdledger's donate page uses
(Stripe.js reference: "Payment Element", "elements.submit", "stripe.confirmPayment"; tabs per
`payment_method_types`, `redirect: 'if_required'`, `next_action` `redirect_to_url` and
`wechat_pay_display_qr_code`). localstripe's `Stripe()` keeps its card element and
`confirmCardPayment`.

The double reads and confirms the intent with the publishable key and the client secret; the
server side of that (and the payment method types) is `localstripe_methods.py`. The intent's
shapes are those of Stripe's OpenAPI description, `openapi/spec3.json` at commit
af5309cae53e5f666f9686dfed306d6d3b5fdc67 of github.com/stripe/openapi (see
`localstripe_methods.py`).
"""

import os

from aiohttp import web

from localstripe import server

_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       'payment-element.js')


@web.middleware
async def payment_element_middleware(request, handler):
    response = await handler(request)
    if (request.method == 'GET' and request.path == '/js.stripe.com/v3/' and
            isinstance(response, web.Response) and response.status == 200):
        with open(_SCRIPT, encoding='utf-8') as f:  # read each time: edits apply
            response.text = response.text + '\n' + f.read()
        response.headers['Cache-Control'] = 'no-store'
    return response


server.app.middlewares.append(payment_element_middleware)
