// The donor page: amounts shown in the reader's language, the gift form, the card step
// (Stripe.js), and polling for the payment's outcome. Plain JS, no build step; the page's
// Content-Security-Policy forbids inline scripts and styles, so this file sets classes and
// the `hidden` attribute only.
(() => {
  'use strict';

  const body = document.body;
  let T = {};
  try {
    T = JSON.parse(body.dataset.i18n || '{}');
  } catch (_) {
    T = {};
  }
  const LANG = body.dataset.lang || document.documentElement.lang || 'en';
  const $ = (id) => document.getElementById(id);

  /** An i18n string with `{name}` placeholders filled in (as text, never as HTML). */
  function t(key, vars) {
    let s = Object.prototype.hasOwnProperty.call(T, key) ? String(T[key]) : key;
    if (vars) {
      for (const [k, v] of Object.entries(vars)) {
        s = s.split(`{${k}}`).join(String(v));
      }
    }
    return s;
  }

  const progress = $('progress');
  const form = $('donate-form');
  const CURRENCY = (form && form.dataset.currency) || (progress && progress.dataset.currency) || 'USD';

  /** "1000000.00" -> "$1,000,000" (en) or "US$1,000,000" (zh-CN); cents kept when not zero. */
  function money(value) {
    const s = String(value == null ? '' : value).trim();
    const n = Number(s);
    if (!s || !Number.isFinite(n)) return s;
    const frac = s.includes('.') ? s.split('.')[1] : '';
    const digits = /[1-9]/.test(frac) ? Math.max(frac.length, 2) : 0;
    try {
      return new Intl.NumberFormat(LANG, {
        style: 'currency',
        currency: CURRENCY,
        minimumFractionDigits: digits,
        maximumFractionDigits: digits,
      }).format(n);
    } catch (_) {
      return `${s} ${CURRENCY}`;
    }
  }

  function count(value) {
    const n = Number(value);
    if (!Number.isFinite(n)) return String(value);
    try {
      return new Intl.NumberFormat(LANG).format(n);
    } catch (_) {
      return String(n);
    }
  }

  function percentOf(part, whole) {
    const p = Number(part);
    const w = Number(whole);
    if (!(w > 0) || !Number.isFinite(p)) return 0;
    return Math.max(0, Math.min(100, Math.floor((p * 100) / w)));
  }

  // ---- Progress figures -------------------------------------------------------------

  function formatPage() {
    for (const el of document.querySelectorAll('.money[data-amount]')) {
      el.textContent = money(el.dataset.amount);
    }
    for (const el of document.querySelectorAll('.period-covered')) {
      el.textContent = t('period_covered', {
        covered: money(el.dataset.covered),
        budget: money(el.dataset.budget),
      });
    }
    const c = $('fund-count');
    if (c) c.textContent = count(c.dataset.count);
  }

  function setAmount(id, value) {
    const el = $(id);
    if (el && value != null) {
      el.dataset.amount = value;
      el.textContent = money(value);
    }
  }

  /** Shows the figures of a fresh `GET /api/fund` document. */
  function showFund(fund) {
    if (!fund || typeof fund !== 'object') return;
    setAmount('fund-raised', fund.raised);
    setAmount('fund-target', fund.target);
    setAmount('fund-remaining', fund.remaining);
    const c = $('fund-count');
    if (c && fund.donation_count != null) {
      c.dataset.count = fund.donation_count;
      c.textContent = count(fund.donation_count);
    }
    const pct = percentOf(fund.raised, fund.target);
    const bar = $('fund-progress');
    if (bar) {
      bar.value = pct;
      bar.textContent = `${pct}%`;
    }
    const pctText = $('fund-percent');
    if (pctText) pctText.textContent = t('percent_of_goal', { percent: pct });
    const items = document.querySelectorAll('#periods .period');
    (fund.periods || []).forEach((p, i) => {
      const li = items[i];
      if (!li) return;
      const pb = li.querySelector('progress');
      if (pb) pb.value = percentOf(p.covered, p.budget);
      const covered = li.querySelector('.period-covered');
      if (covered) {
        covered.dataset.covered = p.covered;
        covered.dataset.budget = p.budget;
        covered.textContent = t('period_covered', {
          covered: money(p.covered),
          budget: money(p.budget),
        });
      }
    });
  }

  async function refreshFund() {
    try {
      const r = await fetch('/api/fund', { headers: { Accept: 'application/json' }, cache: 'no-store' });
      if (!r.ok) return null;
      const fund = await r.json();
      showFund(fund);
      return fund;
    } catch (_) {
      return null; // the figures are only a courtesy here
    }
  }

  formatPage();
  if (!form) return;

  // ---- The gift form ---------------------------------------------------------------

  const MIN = form.dataset.min || '';
  const MAX = form.dataset.max || '';
  const DECIMALS = (MAX.split('.')[1] || MIN.split('.')[1] || '').length;
  const STRIPE_JS = form.dataset.stripeJs || '';

  const custom = $('amount-custom');
  const nameInput = $('donor-name');
  const emailInput = $('email');
  const anonymous = $('anonymous');
  const submitBtn = $('submit');
  const presets = Array.from(form.querySelectorAll('input[name="preset"]'));
  const errorEls = {
    amount: $('error-amount'),
    donor_name: $('error-donor_name'),
    email: $('error-email'),
    form: $('error-form'),
  };
  const inputs = { amount: custom, donor_name: nameInput, email: emailInput };

  /** Full-width characters from a Chinese input method to plain ASCII. */
  function halfWidth(s) {
    return s
      .replace(/[\uFF01-\uFF5E]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xfee0))
      .replace(/\u3000/g, ' ')
      .replace(/\u3002/g, '.');
  }

  /** Forgiving amount clean-up: "$ 1,000" -> "1000", "２５。５" -> "25.5", ".5" -> "0.5". */
  function cleanAmount(raw) {
    let s = halfWidth(String(raw || '')).trim();
    s = s.replace(/^(usd|us\$|\$)\s*/i, '').replace(/\s*(usd|dollars?|美元|元)$/i, '');
    s = s.replace(/[\s,]/g, '');
    if (s.startsWith('.')) s = `0${s}`;
    return s;
  }

  function toMinor(s) {
    const [whole, frac = ''] = s.split('.');
    return Number(whole) * 10 ** DECIMALS + Number((frac + '0'.repeat(DECIMALS)).slice(0, DECIMALS) || 0);
  }

  /** Minor units as the amount text the server writes ("12345" -> "123.45"). */
  function fromMinor(m) {
    if (DECIMALS === 0) return String(m);
    const unit = 10 ** DECIMALS;
    return `${Math.floor(m / unit)}.${String(m % unit).padStart(DECIMALS, '0')}`;
  }

  // "Cover the fee": what the server will add, computed as it does (integers, rounded up).
  const coverFee = $('cover-fee');
  function feeToCover(giftMinor) {
    const pct = Number(coverFee.dataset.percent || 0);
    const fixed = Number(coverFee.dataset.fixed || 0);
    const keep = 10000 - pct;
    const charge = Math.ceil(((giftMinor + fixed) * 10000) / keep);
    return charge - giftMinor;
  }
  function updateCoverFee() {
    if (!coverFee) return;
    const amount = chosenAmount();
    const label = $('cover-fee-label');
    if (amount.value === '' || !amountLooksValid(amount.value)) {
      label.textContent = t('cover_fee_generic');
      return;
    }
    const gift = toMinor(amount.value);
    label.textContent = t('cover_fee_label', { fee: money(fromMinor(feeToCover(gift))), gift: money(fromMinor(gift)) });
  }

  function amountLooksValid(s) {
    const re = DECIMALS > 0 ? new RegExp(`^\\d+(\\.\\d{1,${DECIMALS}})?$`) : /^\d+$/;
    if (!re.test(s)) return false;
    if (MIN && /^\d+(\.\d+)?$/.test(MIN) && toMinor(s) < toMinor(MIN)) return false;
    if (MAX && /^\d+(\.\d+)?$/.test(MAX) && toMinor(s) > toMinor(MAX)) return false;
    return true;
  }

  function setError(field, message) {
    const el = errorEls[field] || errorEls.form;
    el.textContent = message || '';
    const input = inputs[field];
    if (input) {
      if (message) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
  }

  function clearErrors() {
    for (const f of Object.keys(errorEls)) setError(f, '');
  }

  function invalidAmountMessage() {
    return t('error_invalid_amount', { min: money(MIN), max: money(MAX) });
  }

  // Choosing a preset empties the custom box; typing a custom amount unchecks the presets.
  for (const p of presets) {
    p.addEventListener('change', () => {
      if (p.checked) {
        custom.value = '';
        setError('amount', '');
      }
      updateCoverFee();
    });
  }
  custom.addEventListener('input', () => {
    if (custom.value.trim() !== '') {
      for (const p of presets) p.checked = false;
    }
    setError('amount', '');
    updateCoverFee();
  });
  updateCoverFee();
  nameInput.addEventListener('input', () => setError('donor_name', ''));
  emailInput.addEventListener('input', () => setError('email', ''));

  function chosenAmount() {
    const typed = cleanAmount(custom.value);
    if (typed !== '') return { value: typed, typed: true };
    const checked = presets.find((p) => p.checked);
    return { value: checked ? checked.value : '', typed: false };
  }

  /** Light checks before asking the server; returns the fields at fault, first first. */
  function validate(amount, name, email) {
    const bad = [];
    if (amount.value === '') {
      setError('amount', t('error_amount_missing'));
      bad.push(presets[0] || custom);
    } else if (!amountLooksValid(amount.value)) {
      setError('amount', invalidAmountMessage());
      bad.push(custom);
    }
    if (name === '') {
      setError('donor_name', t('error_name_missing'));
      bad.push(nameInput);
    }
    if (email === '') {
      setError('email', t('error_email_missing'));
      bad.push(emailInput);
    } else if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) {
      setError('email', t('error_email_invalid'));
      bad.push(emailInput);
    }
    return bad;
  }

  function uuid() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') {
      try {
        return window.crypto.randomUUID();
      } catch (_) {
        // Not a secure context: fall through.
      }
    }
    const b = window.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // One Idempotency-Key per attempt: the same body sent again (after a lost answer, a
  // double press, a retry) reuses it; any change to the form starts a new attempt.
  let lastBody = null;
  let idemKey = null;
  let busy = false;

  function setBusy(on) {
    busy = on;
    submitBtn.disabled = on;
    submitBtn.textContent = on ? t('submitting') : t('submit');
    form.setAttribute('aria-busy', on ? 'true' : 'false');
  }

  function focusField(el) {
    if (!el) return;
    el.focus();
    if (typeof el.scrollIntoView === 'function') el.scrollIntoView({ block: 'center' });
  }

  function showProblem(status, problem) {
    const code = problem && typeof problem === 'object' ? problem.code : null;
    switch (code) {
      case 'invalid_amount':
        setError('amount', invalidAmountMessage());
        focusField(custom.value.trim() ? custom : presets.find((p) => p.checked) || custom);
        return;
      case 'exceeds_remaining':
        setError('amount', t('error_exceeds_remaining', { remaining: money(problem.remaining) }));
        focusField(custom);
        return;
      case 'invalid_request':
        if (problem.field === 'donor_name') {
          setError('donor_name', t('error_name_missing'));
          focusField(nameInput);
          return;
        }
        if (problem.field === 'email') {
          setError('email', t('error_email_invalid'));
          focusField(emailInput);
          return;
        }
        setError('form', t('error_generic'));
        return;
      case 'intake_closed':
        setError('form', t('error_intake_closed'));
        refreshFund().then((fund) => {
          const msg = fund && fund.intake && fund.intake.message;
          if (msg && errorEls.form.textContent === t('error_intake_closed')) {
            setError('form', `${t('error_intake_closed')} ${msg}`);
          }
        });
        return;
      case 'payments_unavailable':
        setError('form', t($('give-by-check') ? 'error_payments_unavailable_check' : 'error_payments_unavailable'));
        return;
      case 'payment_provider_error':
        setError('form', t('error_payment_provider'));
        return;
      case 'payment_provider_refused':
        setError('form', t($('give-by-check') ? 'error_payment_refused_check' : 'error_payment_refused'));
        return;
      case 'unavailable':
        setError('form', t('error_unavailable'));
        return;
      default:
        if (status === 502) setError('form', t('error_payment_provider'));
        else if (status >= 500) setError('form', t('error_unavailable'));
        else setError('form', t('error_generic'));
    }
  }

  async function postJson(url, payload, key) {
    const ctrl = typeof AbortController === 'function' ? new AbortController() : null;
    const timer = ctrl ? setTimeout(() => ctrl.abort(), 30000) : null;
    try {
      return await fetch(url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Accept: 'application/json, application/problem+json',
          'Idempotency-Key': key,
        },
        body: payload,
        credentials: 'same-origin',
        cache: 'no-store',
        signal: ctrl ? ctrl.signal : undefined,
      });
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (busy) return;
    clearErrors();
    const amount = chosenAmount();
    if (amount.typed && custom.value !== amount.value && amountLooksValid(amount.value)) {
      custom.value = amount.value; // show what is sent
    }
    const donorName = nameInput.value.trim();
    const email = halfWidth(emailInput.value).trim();
    if (email !== emailInput.value) emailInput.value = email;
    const bad = validate(amount, donorName, email);
    if (bad.length) {
      focusField(bad[0]);
      return;
    }
    const payload = JSON.stringify({
      amount: amount.value,
      donor_name: donorName,
      email,
      anonymous: anonymous.checked,
      locale: LANG === 'zh-CN' ? 'zh-CN' : 'en',
      ...(coverFee ? { cover_fee: coverFee.checked } : {}),
    });
    if (payload !== lastBody || !idemKey) {
      idemKey = uuid();
      lastBody = payload;
    }
    setBusy(true);
    let resp;
    try {
      resp = await postJson('/api/donations', payload, idemKey);
    } catch (_) {
      setBusy(false);
      setError('form', t('error_network'));
      return;
    }
    let json = null;
    try {
      json = await resp.json();
    } catch (_) {
      json = null;
    }
    if (resp.ok && json && json.donation_id != null && json.client_secret) {
      setBusy(false);
      startCardStep(json, { amount: amount.value, email });
      return;
    }
    setBusy(false);
    showProblem(resp.status, json);
  });

  submitBtn.disabled = false; // the form works only with this script (see <noscript>)

  // ---- The card step ---------------------------------------------------------------

  const cardStep = $('card-step');
  const cardIntro = $('card-intro');
  const cardError = $('card-error');
  const cardStatus = $('card-status');
  const payBtn = $('pay');
  const startAgain = $('start-again');
  const thanks = $('thanks');

  let donation = null; // {id, token, amount, email, clientSecret}
  let pollTimer = null;
  let polls = 0;
  let stripe = null;
  let elements = null;
  let card = null;
  let paying = false;

  function payLabel() {
    return t('pay_button', { amount: money(donation.amount) });
  }

  function startCardStep(res, sent) {
    donation = {
      id: res.donation_id,
      token: res.status_token || '',
      amount: res.amount || sent.amount,
      email: sent.email,
      clientSecret: res.client_secret,
    };
    form.hidden = true;
    thanks.hidden = true;
    cardStep.hidden = false;
    startAgain.hidden = true;
    cardError.textContent = '';
    cardStatus.textContent = t('card_waiting');
    cardIntro.textContent = t('card_intro', { amount: money(donation.amount) });
    payBtn.textContent = payLabel();
    payBtn.disabled = true;
    payBtn.hidden = false;
    $('card-heading').focus();
    polls = 0;
    schedulePoll();
    mountCard(res.publishable_key || form.dataset.publishableKey || '');
  }

  function loadStripeJs() {
    return new Promise((resolve, reject) => {
      if (typeof window.Stripe === 'function') {
        resolve(window.Stripe);
        return;
      }
      if (!STRIPE_JS) {
        reject(new Error('no Stripe.js address'));
        return;
      }
      const existing = document.querySelector('script[data-stripe-js]');
      const s = existing || document.createElement('script');
      const timer = setTimeout(() => reject(new Error('Stripe.js timed out')), 20000);
      s.addEventListener('load', () => {
        clearTimeout(timer);
        if (typeof window.Stripe === 'function') resolve(window.Stripe);
        else reject(new Error('Stripe.js loaded without Stripe()'));
      });
      s.addEventListener('error', () => {
        clearTimeout(timer);
        reject(new Error('Stripe.js did not load'));
      });
      if (!existing) {
        s.src = STRIPE_JS;
        s.async = true;
        s.dataset.stripeJs = '1';
        document.head.appendChild(s);
      }
    });
  }

  /** Where a payment that leaves the page (Alipay, a bank's page) comes back to. */
  function returnUrl(d) {
    const q = `donation=${encodeURIComponent(d.id)}&token=${encodeURIComponent(d.token)}&lang=${encodeURIComponent(LANG)}`;
    return `${window.location.origin}/donate/return?${q}`;
  }

  // Stripe's Payment Element: one element with every method the server's PaymentIntent
  // offers (PAYMENT_METHODS), in the donor's language.
  async function mountCard(publishableKey) {
    try {
      const StripeFn = await loadStripeJs();
      const locale = LANG === 'zh-CN' ? 'zh' : 'en';
      if (!stripe) stripe = StripeFn(publishableKey, { locale });
      if (!donation) return;
      elements = stripe.elements({
        clientSecret: donation.clientSecret,
        locale,
        appearance: { theme: 'stripe', variables: { fontSizeBase: '18px', colorDanger: '#b3001b' } },
      });
      card = elements.create('payment', { layout: 'tabs' });
      card.mount('#card-element');
      if (typeof card.on === 'function') {
        card.on('change', (e) => {
          if (!paying) cardError.textContent = e && e.error ? e.error.message : '';
        });
        card.on('loaderror', () => {
          cardError.textContent = t('card_js_failed');
        });
      }
      if (donation) payBtn.disabled = false;
    } catch (_) {
      // Keep polling: the payment may still be completed (or already was).
      cardError.textContent = t('card_js_failed');
      payBtn.hidden = true;
    }
  }

  payBtn.addEventListener('click', async () => {
    if (!stripe || !card || !elements || !donation || paying) return;
    const current = donation;
    paying = true;
    payBtn.disabled = true;
    payBtn.textContent = t('paying');
    cardError.textContent = '';
    let result;
    try {
      const checked = await elements.submit();
      result =
        checked && checked.error
          ? checked
          : await stripe.confirmPayment({
              elements,
              clientSecret: current.clientSecret,
              confirmParams: { return_url: returnUrl(current) },
              // Cards and bank debits finish here; Alipay leaves for its page and comes back
              // to /donate/return; WeChat Pay shows its QR code over this page.
              redirect: 'if_required',
            });
    } catch (_) {
      result = { error: { message: t('error_network') } };
    }
    paying = false;
    if (donation !== current) return;
    payBtn.textContent = payLabel();
    if (result && result.error) {
      cardError.textContent = result.error.message || t('card_failed');
      payBtn.disabled = false;
      return;
    }
    const st = result && result.paymentIntent ? result.paymentIntent.status : '';
    if (st === 'processing') {
      payBtn.hidden = true;
      cardStatus.textContent = t('payment_processing');
      return; // the poll confirms it, and stops
    }
    if (st === 'succeeded' || st === 'requires_capture') {
      cardStatus.textContent = t('card_waiting');
      return; // the poll shows the thank-you view once the server has recorded it
    }
    // Not finished (a QR code closed before it was scanned): the donor may try again.
    cardError.textContent = t('payment_not_finished');
    payBtn.disabled = false;
  });

  function stopPolling() {
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = null;
  }

  function schedulePoll() {
    stopPolling();
    // Every second; after ten minutes of waiting, every five.
    pollTimer = setTimeout(pollOnce, polls < 600 ? 1000 : 5000);
  }

  async function pollOnce() {
    pollTimer = null;
    if (!donation) return;
    const current = donation;
    polls += 1;
    let status = null;
    try {
      const url = `/api/donations/${encodeURIComponent(current.id)}/status?token=${encodeURIComponent(current.token)}`;
      const r = await fetch(url, { headers: { Accept: 'application/json' }, cache: 'no-store' });
      if (r.ok) {
        const j = await r.json();
        status = j && j.status;
      }
    } catch (_) {
      status = null; // a lost poll: try again
    }
    if (donation !== current) return; // started again meanwhile
    if (status === 'succeeded') {
      showThanks();
      return;
    }
    if (status === 'processing') {
      // A bank debit: the money arrives in days, and the donor is emailed then.
      stopPolling();
      payBtn.hidden = true;
      cardError.textContent = '';
      cardStatus.textContent = t('payment_processing');
      return;
    }
    if (status === 'failed' || status === 'canceled') {
      if (!cardError.textContent) cardError.textContent = t('card_failed');
      startAgain.hidden = false;
      if (status === 'canceled') {
        payBtn.hidden = true;
        cardStatus.textContent = '';
        return; // final
      }
    }
    schedulePoll();
  }

  function destroyCard() {
    if (card) {
      try {
        if (typeof card.destroy === 'function') card.destroy();
        else if (typeof card.unmount === 'function') card.unmount();
      } catch (_) {
        // already gone
      }
    }
    card = null;
    elements = null;
    $('card-element').textContent = '';
  }

  function showThanks() {
    stopPolling();
    const d = donation;
    destroyCard();
    cardStep.hidden = true;
    form.hidden = true;
    thanks.hidden = false;
    $('thanks-body').textContent = t('thanks_body', { amount: money(d.amount) });
    $('thanks-receipt').textContent = t('thanks_receipt', { email: d.email });
    $('thanks-heading').focus();
    donation = null;
    refreshFund();
  }

  startAgain.addEventListener('click', () => {
    stopPolling();
    destroyCard();
    donation = null;
    lastBody = null; // a new attempt gets a new key
    idemKey = null;
    cardStep.hidden = true;
    thanks.hidden = true;
    form.hidden = false;
    clearErrors();
    $('step1-heading').focus();
  });
})();
