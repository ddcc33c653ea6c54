"""Stripe delivers an event until the endpoint acknowledges it with a 2xx (for up to three
days, backing off); localstripe (PyPI, 1.x) tries once. Here a delivery that fails is tried
again after 1, 2, 4 and 8 seconds (Stripe's schedule, compressed), signed as the first one.
Tests that lose events on purpose point the webhook at a closed port: those retries fail
too and change nothing.

Stripe also lists the events whose delivery failed: `GET /v1/events?delivery_success=false`
(API reference, "List all events": `delivery_success`, "Filter events by whether all webhooks
were successfully delivered"). Each event here records whether its last attempt reached every
endpoint, and the events list takes that filter."""

import asyncio
import hashlib
import hmac
import json
import logging

import aiohttp

from localstripe import resources, webhooks

RETRY_DELAYS = (1, 2, 4, 8)


async def _post(webhook, event, payload, signed_payload):
    signature = hmac.new(webhook.secret.encode('utf-8'), signed_payload,
                         hashlib.sha256).hexdigest()
    headers = {
        'Content-Type': 'application/json; charset=utf-8',
        'Stripe-Signature': 't=%d,v1=%s' % (event.created, signature)}
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(webhook.url, data=payload,
                                    headers=headers) as r:
                return 200 <= r.status < 300
    except aiohttp.client_exceptions.ClientError:
        return False


async def _send_webhook_until_acknowledged(event):
    payload = json.dumps(event._export(), indent=2, sort_keys=True)
    payload = payload.encode('utf-8')
    signed_payload = b'%d.%s' % (event.created, payload)

    await asyncio.sleep(1)

    logger = logging.getLogger('aiohttp.access')
    pending = [w for w in webhooks._webhooks.values()
               if w.events is None or event.type in w.events]
    for delay in (0,) + RETRY_DELAYS:
        if delay:
            await asyncio.sleep(delay)
        failed = []
        for webhook in pending:
            if await _post(webhook, event, payload, signed_payload):
                logger.info('webhook "%s" delivered' % event.type)
            else:
                failed.append(webhook)
        pending = failed
        _delivered[event.id] = not pending
        if not pending:
            return
    logger.info('webhook "%s" given up' % event.type)


webhooks._send_webhook = _send_webhook_until_acknowledged

# Event id -> whether its last delivery attempt reached every endpoint.
_delivered = {}
_list_events = resources.Event._api_list_all


@classmethod
def _list_events_by_delivery(cls, url, delivery_success=None, **kwargs):
    page = _list_events.__func__(cls, url, **kwargs)
    if delivery_success is None:
        return page
    want = str(delivery_success).lower() == 'true'
    page._list = [e for e in page._list
                        if e.id in _delivered and _delivered[e.id] == want]
    return page


resources.Event._api_list_all = _list_events_by_delivery
