/*
 * A test double of the subset of Stripe.js's Payment Element that crowdledger's donate page
 * uses, appended by tests/peers/localstripe_payment_element.py to localstripe's fake Stripe.js
 * (GET /js.stripe.com/v3/). It keeps localstripe's Stripe() (card element,
 * confirmCardPayment, ...) and adds:
 *
 *   const stripe = Stripe(publishableKey, { locale });                 // 'en' or 'zh'
 *   const elements = stripe.elements({ clientSecret, locale, appearance });
 *   const paymentElement = elements.create('payment', { layout: 'tabs' });
 *   paymentElement.mount('#payment-element');
 *   paymentElement.on('change', (e) => e.complete, e.value.type);
 *   paymentElement.on('ready', () => {});
 *   const { error } = await elements.submit();
 *   const result = await stripe.confirmPayment({ elements, clientSecret,
 *     confirmParams: { return_url }, redirect: 'if_required' });
 *
 * It talks to localstripe with the publishable key and the client secret, as Stripe.js does,
 * through the endpoints tests/peers/localstripe_methods.py adds. No inline script or style:
 * panels are hidden with the `hidden` attribute, the WeChat Pay dialog is placed through
 * element.style (CSSOM).
 */
(function () {
  'use strict';

  const BASE = LOCALSTRIPE_BASE_API;
  const baseStripe = window.Stripe;

  const TEXT = {
    en: {
      tablist: 'Payment method',
      card: 'Card', us_bank_account: 'US bank account', alipay: 'Alipay',
      wechat_pay: 'WeChat Pay', link: 'Link',
      number: 'Card number', expiry: 'Expiration date (MM / YY)',
      cvc: 'Security code (CVC)',
      bank: 'Test bank account ••••6789', mandate: 'I authorize this debit',
      alipayNote: 'You will be redirected to Alipay to complete the payment.',
      wechatNote: 'A QR code will be shown: scan it with WeChat to pay.',
      linkNote: 'Pay with the card saved in your Link account (test).',
      numberIncomplete: 'Your card number is incomplete.',
      expiryIncomplete: "Your card's expiration date is incomplete.",
      cvcIncomplete: "Your card's security code is incomplete.",
      mandateMissing: 'Authorize the debit to continue.',
      notMounted: 'The Payment Element is not mounted.',
      dialog: 'WeChat Pay', qrAlt: 'WeChat Pay QR code',
      scan: 'Scan this QR code with WeChat to pay.', close: 'Close',
    },
    zh: {
      tablist: '支付方式',
      card: '银行卡', us_bank_account: '美国银行账户', alipay: '支付宝',
      wechat_pay: '微信支付', link: 'Link',
      number: '卡号', expiry: '有效期（月 / 年）', cvc: '安全码（CVC）',
      bank: '测试银行账户 ••••6789', mandate: '我授权此次扣款',
      alipayNote: '您将被转到支付宝完成付款。',
      wechatNote: '将显示一个二维码：请用微信扫码付款。',
      linkNote: '使用 Link 账户中保存的银行卡付款（测试）。',
      numberIncomplete: '您的卡号不完整。',
      expiryIncomplete: '您的卡片有效期不完整。',
      cvcIncomplete: '您的卡片安全码不完整。',
      mandateMissing: '请授权此次扣款后继续。',
      notMounted: '支付组件尚未加载。',
      dialog: '微信支付', qrAlt: '微信支付二维码',
      scan: '请使用微信扫描二维码付款。', close: '关闭',
    },
  };

  // Card numbers localstripe knows, as its test payment method ids.
  const TEST_CARDS = {
    '4242424242424242': 'pm_card_visa',
    '4000000000000002': 'pm_card_chargeCustomerFail',
    '4000000000000341': 'pm_card_chargeCustomerFail',
  };

  let counter = 0;

  function language(locale) {
    let l = locale;
    if (!l || l === 'auto') {
      l = (navigator.language || 'en');
    }
    return String(l).toLowerCase().startsWith('zh') ? 'zh' : 'en';
  }

  function intentId(clientSecret) {
    const m = /^(pi_\w+?)_secret_/.exec(String(clientSecret || ''));
    if (!m) {
      throw new Error('Invalid value for clientSecret: expected a ' +
                      'PaymentIntent client secret (pi_..._secret_...).');
    }
    return m[1];
  }

  async function fetchIntent(key, clientSecret) {
    const query = new URLSearchParams({ key, client_secret: clientSecret });
    const url = `${BASE}/v1/payment_intents/${intentId(clientSecret)}?${query}`;
    const response = await fetch(url);
    const body = await response.json().catch(() => ({}));
    if (!response.ok || body.error) {
      const e = body.error || {};
      throw { type: e.type || 'invalid_request_error',
              message: e.message || `HTTP ${response.status}` };
    }
    return body;
  }

  function node(tag, attrs, text) {
    const n = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v === true) {
        n.setAttribute(k, '');
      } else if (v !== false && v !== null && v !== undefined) {
        n.setAttribute(k, String(v));
      }
    });
    if (text !== undefined) {
      n.textContent = text;
    }
    return n;
  }

  class PaymentElement {
    constructor(elements, options) {
      this._elements = elements;
      this._options = options || {};
      this._listeners = {};
      this._root = null;
      this._types = [];
      this._selected = null;
      this._uid = 'ls-pe-' + (++counter);
    }

    get _t() { return TEXT[this._elements._lang]; }

    on(event, handler) {
      (this._listeners[event] = this._listeners[event] || []).push(handler);
      return this;
    }

    off(event, handler) {
      this._listeners[event] = (this._listeners[event] || [])
        .filter((h) => handler !== undefined && h !== handler);
      return this;
    }

    once(event, handler) {
      const wrapped = (e) => { this.off(event, wrapped); handler(e); };
      return this.on(event, wrapped);
    }

    _emit(event, payload) {
      (this._listeners[event] || []).slice().forEach((h) => {
        try { h(payload); } catch (e) { console.error(e); }
      });
    }

    mount(target) {
      const container = typeof target === 'string' ?
        document.querySelector(target) : target;
      if (!(container instanceof window.Element)) {
        throw new Error('Invalid DOM element. Make sure to call mount() with ' +
                        'a valid DOM element or selector.');
      }
      if (this._root) {
        throw new Error('This Element is already mounted.');
      }
      this._root = node('div', {
        class: 'localstripe-payment-element',
        'data-localstripe': 'payment-element',
        lang: this._elements._lang === 'zh' ? 'zh-CN' : 'en',
      });
      container.appendChild(this._root);
      this._elements._intent.then((intent) => {
        if (!this._root) {
          return;
        }
        this._types = (intent.payment_method_types || ['card'])
          .filter((t) => Object.prototype.hasOwnProperty.call(TEXT.en, t));
        this._render();
        this._emit('ready', { elementType: 'payment' });
      }, (error) => {
        this._emit('loaderror', { elementType: 'payment', error });
      });
      return this;
    }

    unmount() {
      if (this._root) {
        this._root.remove();
        this._root = null;
      }
    }

    destroy() {
      this.unmount();
      this._elements._element = null;
    }

    update(options) {
      Object.assign(this._options, options || {});
    }

    focus() {
      const tab = this._root && this._root.querySelector('[aria-selected="true"]');
      if (tab) {
        tab.focus();
      }
    }

    blur() {}
    clear() {}
    collapse() {}

    _render() {
      const t = this._t;
      const tablist = node('div', { role: 'tablist', 'aria-label': t.tablist,
                                    class: 'localstripe-tabs' });
      this._root.appendChild(tablist);
      this._tabs = {};
      this._panels = {};
      this._types.forEach((type) => {
        const tabId = `${this._uid}-tab-${type}`;
        const panelId = `${this._uid}-panel-${type}`;
        const tab = node('button', {
          type: 'button', role: 'tab', id: tabId, 'aria-controls': panelId,
          'aria-selected': 'false', tabindex: '-1', 'data-method': type,
          class: 'localstripe-tab',
        }, t[type]);
        tab.addEventListener('click', () => this._select(type, true));
        tab.addEventListener('keydown', (e) => this._arrow(e, type));
        tablist.appendChild(tab);
        const panel = node('div', {
          role: 'tabpanel', id: panelId, 'aria-labelledby': tabId,
          'data-method': type, class: 'localstripe-panel', hidden: true,
        });
        this._fill(panel, type);
        this._root.appendChild(panel);
        this._tabs[type] = tab;
        this._panels[type] = panel;
      });
      if (this._types.length) {
        this._select(this._types[0], false);
      }
    }

    _field(panel, name, label, attrs) {
      const id = `${this._uid}-${name}`;
      const wrap = node('div', { class: 'localstripe-field' });
      wrap.appendChild(node('label', { for: id }, label));
      const input = node('input', Object.assign({
        id, name, type: 'text', 'data-field': name, spellcheck: 'false',
      }, attrs));
      input.addEventListener('input', () => this._changed());
      wrap.appendChild(input);
      panel.appendChild(wrap);
      return input;
    }

    _fill(panel, type) {
      const t = this._t;
      if (type === 'card') {
        this._number = this._field(panel, 'number', t.number, {
          inputmode: 'numeric', autocomplete: 'cc-number',
          placeholder: '1234 1234 1234 1234' });
        this._expiry = this._field(panel, 'expiry', t.expiry, {
          inputmode: 'numeric', autocomplete: 'cc-exp', placeholder: 'MM / YY' });
        this._cvc = this._field(panel, 'cvc', t.cvc, {
          inputmode: 'numeric', autocomplete: 'cc-csc', placeholder: 'CVC' });
      } else if (type === 'us_bank_account') {
        panel.appendChild(node('p', { 'data-localstripe': 'bank-account' },
                               t.bank));
        const id = `${this._uid}-mandate`;
        const wrap = node('div', { class: 'localstripe-field' });
        this._mandate = node('input', { type: 'checkbox', id, name: 'mandate',
                                        'data-field': 'mandate' });
        this._mandate.addEventListener('change', () => this._changed());
        wrap.appendChild(this._mandate);
        wrap.appendChild(node('label', { for: id }, t.mandate));
        panel.appendChild(wrap);
      } else {
        const note = { alipay: t.alipayNote, wechat_pay: t.wechatNote,
                       link: t.linkNote }[type];
        panel.appendChild(node('p', {}, note));
      }
    }

    _arrow(e, type) {
      const i = this._types.indexOf(type);
      let next = null;
      if (e.key === 'ArrowRight') next = this._types[(i + 1) % this._types.length];
      if (e.key === 'ArrowLeft') next = this._types[(i - 1 + this._types.length) % this._types.length];
      if (e.key === 'Home') next = this._types[0];
      if (e.key === 'End') next = this._types[this._types.length - 1];
      if (next) {
        e.preventDefault();
        this._select(next, true);
        this._tabs[next].focus();
      }
    }

    _select(type, notify) {
      this._selected = type;
      this._types.forEach((other) => {
        const on = other === type;
        this._tabs[other].setAttribute('aria-selected', on ? 'true' : 'false');
        this._tabs[other].setAttribute('tabindex', on ? '0' : '-1');
        this._panels[other].hidden = !on;
      });
      if (notify) {
        this._changed();
      }
    }

    _cardValue() {
      const number = (this._number.value || '').replace(/\D/g, '');
      const m = /^\s*(\d{1,2})\s*\/?\s*(\d{2}|\d{4})\s*$/.exec(this._expiry.value || '');
      const cvc = (this._cvc.value || '').replace(/\D/g, '');
      return {
        number,
        exp_month: m ? String(parseInt(m[1], 10)) : '',
        exp_year: m ? (m[2].length === 2 ? '20' + m[2] : m[2]) : '',
        cvc,
      };
    }

    // The first thing missing in the selected tab, or null when complete.
    _missing() {
      const t = this._t;
      if (this._selected === 'card') {
        const c = this._cardValue();
        if (!(c.number.length >= 13 && c.number.length <= 19)) return t.numberIncomplete;
        const month = parseInt(c.exp_month, 10);
        if (!(month >= 1 && month <= 12 && c.exp_year.length === 4)) return t.expiryIncomplete;
        if (!(c.cvc.length === 3 || c.cvc.length === 4)) return t.cvcIncomplete;
        return null;
      }
      if (this._selected === 'us_bank_account') {
        return this._mandate.checked ? null : t.mandateMissing;
      }
      return this._selected ? null : t.notMounted;
    }

    _empty() {
      if (this._selected === 'card') {
        return !(this._number.value || this._expiry.value || this._cvc.value);
      }
      if (this._selected === 'us_bank_account') {
        return !this._mandate.checked;
      }
      return false;
    }

    _changed() {
      this._emit('change', {
        elementType: 'payment',
        complete: this._missing() === null,
        empty: this._empty(),
        collapsed: false,
        value: { type: this._selected },
      });
    }

    // The confirm parameters for the selected tab.
    _params(body) {
      const type = this._selected;
      if (type === 'card') {
        const c = this._cardValue();
        if (TEST_CARDS[c.number]) {
          body.set('payment_method', TEST_CARDS[c.number]);
          return;
        }
        body.set('payment_method_data[type]', 'card');
        body.set('payment_method_data[card][number]', c.number);
        body.set('payment_method_data[card][exp_month]', c.exp_month);
        body.set('payment_method_data[card][exp_year]', c.exp_year);
        body.set('payment_method_data[card][cvc]', c.cvc.slice(0, 3));
        return;
      }
      body.set('payment_method_data[type]', type);
      if (type === 'wechat_pay') {
        body.set('payment_method_options[wechat_pay][client]', 'web');
      }
    }
  }

  class PaymentElements {
    constructor(key, options, stripeLocale) {
      this._key = key;
      this._clientSecret = options.clientSecret;
      this._lang = language(options.locale || stripeLocale);
      this._appearance = options.appearance;
      this._element = null;
      this._intent = fetchIntent(key, options.clientSecret);
      this._intent.catch(() => {});  // reported as the element's loaderror
    }

    create(type, options) {
      if (type !== 'payment') {
        throw new Error(`localstripe: this test double only has the "payment" ` +
                        `element, not "${type}"`);
      }
      if (this._element) {
        throw new Error('Can only create one Element of type payment.');
      }
      this._element = new PaymentElement(this, options);
      return this._element;
    }

    getElement(type) {
      return type === 'payment' ? this._element : null;
    }

    update(options) {
      if (options && options.locale) {
        this._lang = language(options.locale);
      }
    }

    async fetchUpdates() {
      this._intent = fetchIntent(this._key, this._clientSecret);
      await this._intent;
      return {};
    }

    async submit() {
      const el = this._element;
      const missing = el && el._root ? el._missing() :
        TEXT[this._lang].notMounted;
      if (missing) {
        return { error: { type: 'validation_error', message: missing } };
      }
      return {};
    }
  }

  function appendParams(url, params) {
    const [path, fragment] = url.split('#');
    const sep = path.includes('?') ?
      (path.endsWith('?') || path.endsWith('&') ? '' : '&') : '?';
    return path + sep + new URLSearchParams(params) +
      (fragment !== undefined ? '#' + fragment : '');
  }

  function flatten(prefix, value, body) {
    if (value === null || value === undefined) return;
    if (typeof value === 'object') {
      Object.entries(value).forEach(([k, v]) => flatten(`${prefix}[${k}]`, v, body));
    } else {
      body.set(prefix, String(value));
    }
  }

  function showQrDialog(key, clientSecret, intent, lang) {
    const t = TEXT[lang];
    const qr = intent.next_action.wechat_pay_display_qr_code;
    return new Promise((resolve) => {
      const before = document.activeElement;
      const backdrop = node('div', { class: 'localstripe-backdrop',
                                     'data-localstripe': 'wechat-pay-backdrop' });
      Object.assign(backdrop.style, {
        position: 'fixed', inset: '0', background: 'rgba(0, 0, 0, 0.5)',
        display: 'flex', alignItems: 'center', justifyContent: 'center',
        zIndex: '2147483647',
      });
      const dialog = node('div', {
        role: 'dialog', 'aria-modal': 'true', 'aria-label': t.dialog,
        'data-localstripe': 'wechat-pay-dialog',
        lang: lang === 'zh' ? 'zh-CN' : 'en', tabindex: '-1',
      });
      Object.assign(dialog.style, {
        background: '#fff', color: '#111', padding: '24px',
        borderRadius: '8px', textAlign: 'center', maxWidth: '320px',
      });
      dialog.appendChild(node('p', {}, t.scan));
      dialog.appendChild(node('img', { src: qr.image_data_url, alt: t.qrAlt,
                                       width: '200', height: '200' }));
      const close = node('button', { type: 'button',
                                     'data-action': 'close' }, t.close);
      dialog.appendChild(node('div')).appendChild(close);
      backdrop.appendChild(dialog);
      document.body.appendChild(backdrop);
      close.focus();

      let current = intent;
      let done = false;
      let timer = null;
      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        document.removeEventListener('keydown', onKey, true);
        backdrop.remove();
        if (before && typeof before.focus === 'function') before.focus();
        resolve({ paymentIntent: current });
      };
      const onKey = (e) => {
        if (e.key === 'Escape') {
          e.preventDefault();
          finish();
        } else if (e.key === 'Tab') {  // the close button is the only stop
          e.preventDefault();
          close.focus();
        }
      };
      document.addEventListener('keydown', onKey, true);
      close.addEventListener('click', finish);
      const poll = async () => {
        if (done) return;
        try {
          current = await fetchIntent(key, clientSecret);
        } catch (e) {
          // keep the last intent; try again
        }
        if (current.status !== 'requires_action') {
          finish();
        } else if (!done) {
          timer = setTimeout(poll, 500);
        }
      };
      timer = setTimeout(poll, 500);
    });
  }

  async function confirmPayment(stripe, key, stripeLocale, params) {
    params = params || {};
    const elements = params.elements;
    const el = elements && elements._element;
    const clientSecret = params.clientSecret || (elements && elements._clientSecret);
    const lang = elements ? elements._lang : language(stripeLocale);
    const confirmParams = params.confirmParams || {};
    const redirect = params.redirect || 'always';
    if (!el || !el._root) {
      return { error: { type: 'validation_error', message: TEXT[lang].notMounted } };
    }
    const missing = el._missing();
    if (missing) {
      return { error: { type: 'validation_error', message: missing } };
    }
    const body = new URLSearchParams();
    body.set('key', key);
    body.set('client_secret', clientSecret);
    if (confirmParams.return_url) {
      body.set('return_url', confirmParams.return_url);
    }
    el._params(body);
    if (confirmParams.payment_method_data && !body.has('payment_method')) {
      Object.entries(confirmParams.payment_method_data).forEach(([k, v]) => {
        if (k !== 'type') flatten(`payment_method_data[${k}]`, v, body);
      });
    }
    let pi;
    try {
      const response = await fetch(
        `${BASE}/v1/payment_intents/${intentId(clientSecret)}/confirm`,
        { method: 'POST', body,
          headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
      pi = await response.json().catch(() => ({}));
      if (!response.ok || pi.error) {
        const e = pi.error || {};
        const error = {
          type: e.type || (response.status === 402 ? 'card_error' : 'invalid_request_error'),
          message: e.message || `HTTP ${response.status}`,
        };
        ['code', 'decline_code', 'param', 'payment_intent'].forEach((k) => {
          if (e[k] !== undefined) error[k] = e[k];
        });
        return { error };
      }
    } catch (e) {
      return { error: { type: 'api_connection_error', message: String(e && e.message || e) } };
    }

    const action = pi.next_action || {};
    if (pi.status === 'requires_action' && action.type === 'redirect_to_url') {
      window.location.assign(action.redirect_to_url.url);
      return new Promise(() => {});
    }
    if (pi.status === 'requires_action' && action.type === 'wechat_pay_display_qr_code') {
      return showQrDialog(key, clientSecret, pi, lang);
    }
    if (pi.status === 'requires_action' && action.type === 'use_stripe_sdk') {
      return stripe.confirmCardPayment(clientSecret);  // localstripe's 3D Secure modal
    }
    if (pi.status === 'requires_payment_method') {
      const e = pi.last_payment_error || {};
      return { error: { type: e.type || 'card_error', code: e.code,
                        message: e.message || 'The payment failed.',
                        payment_intent: pi } };
    }
    if (redirect !== 'if_required' && confirmParams.return_url) {
      window.location.assign(appendParams(confirmParams.return_url, {
        payment_intent: pi.id, payment_intent_client_secret: clientSecret,
        redirect_status: pi.status === 'succeeded' ? 'succeeded' : 'pending',
      }));
      return new Promise(() => {});
    }
    return { paymentIntent: pi };
  }

  window.Stripe = function (key, options) {
    const stripe = baseStripe(key);
    const stripeLocale = (options || {}).locale;
    const cardElements = stripe.elements;
    stripe.elements = function (opts) {
      if (opts && opts.clientSecret) {
        return new PaymentElements(key, opts, stripeLocale);
      }
      return cardElements(opts);
    };
    stripe.confirmPayment = (params) => confirmPayment(stripe, key, stripeLocale, params);
    return stripe;
  };
})();
