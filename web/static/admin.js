// The admin page: sign in, intake switch, fund, periods, recent donations with refunds,
// offline gifts, CSV downloads and charts. The bearer token lives in this closure only
// (never in localStorage or a cookie): reloading the page signs out.
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

  function t(key, vars) {
    let s = Object.prototype.hasOwnProperty.call(T, key) ? String(T[key]) : key;
    if (vars) {
      for (const [k, v] of Object.entries(vars)) s = s.split(`{${k}}`).join(String(v));
    }
    return s;
  }

  let token = null;
  let role = null;
  let currency = 'USD';
  let fund = null;

  function money(value) {
    const s = String(value == null ? '' : value).trim();
    const n = Number(s);
    if (!s || !Number.isFinite(n)) return s;
    const frac = s.includes('.') ? s.split('.')[1] : '';
    try {
      return new Intl.NumberFormat(LANG, {
        style: 'currency',
        currency,
        minimumFractionDigits: frac.length,
        maximumFractionDigits: frac.length,
      }).format(n);
    } catch (_) {
      return `${s} ${currency}`;
    }
  }

  function uuid() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') {
      try {
        return window.crypto.randomUUID();
      } catch (_) {
        // fall through
      }
    }
    const b = window.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  /** Builds an element: el('td', {className: 'num'}, 'text', child, ...). Text only, never HTML. */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v == null) continue;
        if (k === 'className') node.className = v;
        else if (k === 'dataset') Object.assign(node.dataset, v);
        else if (k === 'hidden') node.hidden = Boolean(v);
        else if (k in node && typeof v !== 'string') node[k] = v;
        else node.setAttribute(k, v);
      }
    }
    for (const c of children) {
      if (c == null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  // ---- API ---------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.problem = problem || {};
    }
  }

  async function api(method, path, payload, opts = {}) {
    const headers = { Accept: opts.accept || 'application/json, application/problem+json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (payload !== undefined) headers['Content-Type'] = 'application/json';
    if (opts.idempotencyKey) headers['Idempotency-Key'] = opts.idempotencyKey;
    let resp;
    try {
      resp = await fetch(path, {
        method,
        headers,
        body: payload === undefined ? undefined : JSON.stringify(payload),
        cache: 'no-store',
        credentials: 'same-origin',
      });
    } catch (_) {
      throw new ApiError(0, { code: 'network' });
    }
    if (!resp.ok) {
      let problem = null;
      try {
        problem = await resp.json();
      } catch (_) {
        problem = null;
      }
      if (resp.status === 401 && token && !opts.login) signOut(t('session_expired'));
      throw new ApiError(resp.status, problem);
    }
    if (opts.raw) return resp;
    if (resp.status === 204) return null;
    const text = await resp.text();
    return text ? JSON.parse(text) : null;
  }

  /** Labels of the API's field names, for messages in the page language. */
  const FIELD_LABELS = {
    amount: 'offline_amount',
    donor_name: 'offline_donor',
    email: 'offline_email',
    method: 'offline_method',
    reference: 'offline_reference',
    received_on: 'offline_received',
    name: 'fund_name_label',
    target: 'fund_target_label',
    label: 'period_label',
    starts_on: 'period_starts',
    ends_on: 'period_ends',
    budget: 'period_budget',
    reason: 'refund_reason_label',
    message: 'intake_message_label',
    password: 'staff_password_label',
    current_password: 'password_current',
    new_password: 'password_new',
    code: 'mfa_code_label',
    payee: 'disbursement_payee',
    paid_on: 'disbursement_paid_on',
    period_id: 'disbursement_period',
    public_memo: 'disbursement_public_memo',
    memo: 'disbursement_memo',
  };

  function fieldLabel(field) {
    const key = FIELD_LABELS[field];
    return key ? t(key) : field;
  }

  /** The message for a failed call, in the page language where the code is known. The
   *  server's own detail (English) is added on the English page only. */
  function problemText(err) {
    const p = (err && err.problem) || {};
    const detail = LANG === 'en' && p.detail ? ` (${p.detail})` : '';
    switch (p.code) {
      case 'network':
        return t('error_network_admin');
      case 'target_reached':
        return t('error_target_reached');
      case 'refund_exceeds_remaining':
        return t('error_refund_exceeds');
      case 'idempotency_conflict':
        return t('error_idempotency');
      case 'approval_own_request':
        return t('error_approval_own');
      case 'approval_not_pending':
        return t('error_approval_not_pending');
      case 'reauth_required':
        showReauth();
        return t('reauth_heading');
      case 'last_admin':
        return t('error_last_admin');
      case 'exceeds_balance':
        return t('error_exceeds_balance');
      case 'already_voided':
        return t('error_already_voided');
      case 'user_exists':
        return t('error_user_exists');
      case 'invalid_amount':
        return `${t('error_admin_amount', { field: fieldLabel(p.field || 'amount') })}${detail}`;
      case 'invalid_request':
        return p.field
          ? `${t('error_invalid_field', { field: fieldLabel(p.field) })}${detail}`
          : `${t('error_generic_admin')}${detail}`;
      default:
        break;
    }
    if (err && err.status === 401) return t('session_expired');
    if (err && err.status === 403) return t('forbidden');
    if (err && err.status >= 500) return `${t('error_unavailable_admin')}${detail}`;
    return `${t('error_generic_admin')}${detail}`;
  }

  function say(id, text) {
    const node = $(id);
    if (node) node.textContent = text || '';
  }

  /** Runs an action with its button disabled, its error and status lines cleared and set. */
  async function act(button, errorId, statusId, fn) {
    if (button) button.disabled = true;
    say(errorId, '');
    if (statusId) say(statusId, '');
    try {
      const out = await fn();
      return out;
    } catch (err) {
      say(errorId, problemText(err));
      return undefined;
    } finally {
      if (button) button.disabled = false;
    }
  }

  // ---- Sign in and out -----------------------------------------------------------------

  const loginSection = $('login-section');
  const dashboard = $('dashboard');

  let mfaToken = null;
  let signedInEmail = '';

  function showOnly(section) {
    for (const id of ['login-section', 'mfa-section', 'enrol-section', 'dashboard']) {
      $(id).hidden = id !== section;
    }
  }

  function signOut(message) {
    token = null;
    mfaToken = null;
    showOnly('login-section');
    $('login-password').value = '';
    $('reauth-section').hidden = true;
    say('login-error', message || '');
    $('login-email').focus();
  }

  /** A login's answer: a second factor due, an enrolment due, or the dashboard. */
  function signedIn(res) {
    if (res.mfa_required) {
      mfaToken = res.mfa_token;
      showOnly('mfa-section');
      $('mfa-code').value = '';
      say('mfa-error', '');
      $('mfa-code').focus();
      return;
    }
    token = res.access_token;
    role = res.role || null;
    say('signed-in-as', role ? `${signedInEmail} (${role})` : signedInEmail);
    if (res.enrolment_required) {
      startEnrolment();
      return;
    }
    showDashboard();
  }

  function showDashboard() {
    showOnly('dashboard');
    $('intake-admin-heading').focus();
    loadAll();
  }

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const email = $('login-email').value.trim();
    const password = $('login-password').value;
    const button = $('login-submit');
    if (!email || !password) {
      say('login-error', t('login_failed'));
      return;
    }
    button.disabled = true;
    say('login-error', '');
    try {
      const res = await api('POST', '/api/auth/login', { email, password }, { login: true });
      $('login-password').value = '';
      signedInEmail = email;
      signedIn(res);
    } catch (err) {
      const wrong = err.status === 401 || err.status === 403 || err.status === 422 || err.status === 400;
      say('login-error', wrong ? t('login_failed') : problemText(err));
      $('login-password').focus();
    } finally {
      button.disabled = false;
    }
  });

  $('mfa-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const code = $('mfa-code').value.trim();
    const button = $('mfa-submit');
    button.disabled = true;
    say('mfa-error', '');
    try {
      const res = await api('POST', '/api/auth/mfa', { mfa_token: mfaToken, code }, { login: true });
      mfaToken = null;
      signedIn(res);
    } catch (err) {
      say('mfa-error', err.status === 401 ? t('mfa_wrong') : problemText(err));
      $('mfa-code').focus();
    } finally {
      button.disabled = false;
    }
  });

  async function startEnrolment() {
    showOnly('enrol-section');
    $('recovery-box').hidden = true;
    $('enrol-form').hidden = false;
    say('enrol-error', '');
    try {
      const e = await api('POST', '/api/auth/2fa/enrol', {});
      $('enrol-qr').src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(e.qr_svg)}`;
      say('enrol-secret', e.secret);
    } catch (err) {
      say('enrol-error', problemText(err));
    }
    $('enrol-heading').focus();
  }

  $('enrol-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const code = $('enrol-code').value.trim();
    const res = await act($('enrol-submit'), 'enrol-error', null, () =>
      api('POST', '/api/auth/2fa/confirm', { code }, { login: true }),
    );
    if (res === undefined) return;
    token = res.access_token;
    $('enrol-code').value = '';
    $('enrol-form').hidden = true;
    const list = $('recovery-codes');
    list.textContent = '';
    for (const c of res.recovery_codes || []) list.append(el('li', null, el('code', null, c)));
    $('recovery-box').hidden = false;
    $('recovery-heading').focus();
  });

  $('recovery-done').addEventListener('click', () => {
    $('recovery-codes').textContent = '';
    showDashboard();
  });

  $('logout').addEventListener('click', async () => {
    try {
      await api('POST', '/api/auth/logout');
    } catch (_) {
      // Signed out here whatever the server said.
    }
    signOut('');
  });

  // ---- Dangerous actions ask for the password or a code again (sudo mode) ---------------

  function showReauth() {
    const section = $('reauth-section');
    section.hidden = false;
    say('reauth-error', '');
    say('reauth-status', '');
    $('reauth-secret').value = '';
    $('reauth-heading').focus();
  }

  $('reauth-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const typed = $('reauth-secret').value.trim();
    const isCode = /^\d{6}$/.test(typed) || /^[a-z2-7]{5}-?[a-z2-7]{5}$/i.test(typed);
    const res = await act($('reauth-submit'), 'reauth-error', null, () =>
      api('POST', '/api/auth/reauth', isCode ? { code: typed } : { password: typed }, { login: true }),
    );
    if (res === undefined) return;
    token = res.access_token;
    $('reauth-secret').value = '';
    $('reauth-section').hidden = true;
    say('reauth-status', t('reauth_done'));
  });

  // Gross, fees, net and refunds by how donors paid (the summary report's `by_method`).
  async function loadByMethod() {
    const tbody = $('by-method-body');
    try {
      const res = await api('GET', '/api/reports/summary');
      tbody.textContent = '';
      for (const m of (res && res.by_method) || []) {
        tbody.append(
          el(
            'tr',
            { dataset: { method: m.method } },
            el('td', null, methodText(m.method)),
            el('td', { className: 'num' }, m.gifts),
            el('td', { className: 'num' }, money(m.gross)),
            el('td', { className: 'num' }, money(m.fees)),
            el('td', { className: 'num' }, money(m.net)),
            el('td', { className: 'num' }, money(m.refunds)),
          ),
        );
      }
    } catch (err) {
      say('reports-error', problemText(err));
    }
  }

  function loadAll() {
    loadFund();
    loadDonations();
    loadByMethod();
    loadCharts();
    const admin = role === 'admin';
    $('approvals-section').hidden = !admin;
    $('audit-section').hidden = !admin;
    $('staff-section').hidden = !admin;
    loadAccount();
    loadDisbursements();
    if (admin) {
      loadApprovals();
      loadAudit(true);
      loadStaff();
    }
  }

  // ---- Fund, intake, periods --------------------------------------------------------

  function showFund(f) {
    if (!f || typeof f !== 'object') return;
    fund = f;
    if (f.currency) currency = f.currency;
    const state = (f.intake && f.intake.state) || '';
    say('intake-state', t(`state_${state}`));
    say('intake-current-message', (f.intake && f.intake.message) || '');
    say('fund-currency', currency);
    say(
      'fund-summary',
      t('fund_raised_line', {
        raised: money(f.raised),
        target: money(f.target),
        count: f.donation_count,
      }),
    );
    const nameInput = $('fund-name');
    const targetInput = $('fund-target');
    if (document.activeElement !== nameInput) nameInput.value = f.name || '';
    if (document.activeElement !== targetInput) targetInput.value = f.target || '';
    $('pause').disabled = state !== 'open';
    $('reopen').disabled = state === 'open';
    showPeriods(f.periods || []);
    say('disbursements-summary', t('disbursements_summary', { disbursed: money(f.disbursed), balance: money(f.balance) }));
    const select = $('disbursement-period');
    const chosen = select.value;
    while (select.options.length > 1) select.remove(1);
    for (const p of f.periods || []) select.append(el('option', { value: String(p.id) }, p.label));
    select.value = chosen;
  }

  async function loadFund() {
    try {
      showFund(await api('GET', '/api/fund'));
    } catch (err) {
      say('intake-error', problemText(err));
    }
  }

  async function setIntake(accepting, button) {
    // The message is for donors while intake is paused; reopening clears it, so a later
    // automatic close (target reached) does not show a stale pause notice.
    const input = $('intake-message-input');
    const message = accepting ? '' : input.value.trim();
    const res = await act(button, 'intake-error', 'intake-status', () =>
      api('PUT', '/api/admin/intake', { accepting, message }),
    );
    if (res !== undefined) {
      if (accepting) input.value = '';
      if (res && res.intake) showFund(res);
      else await loadFund();
      say('intake-status', t('saved'));
    } else {
      await loadFund();
    }
  }

  $('pause').addEventListener('click', (ev) => setIntake(false, ev.currentTarget));
  $('reopen').addEventListener('click', (ev) => setIntake(true, ev.currentTarget));

  $('fund-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const payload = {};
    const name = $('fund-name').value.trim();
    const target = $('fund-target').value.trim().replace(/[,\s]/g, '');
    if (fund && name && name !== fund.name) payload.name = name;
    else if (!fund && name) payload.name = name;
    if (target && (!fund || target !== fund.target)) payload.target = target;
    if (!Object.keys(payload).length) {
      say('fund-status', t('saved'));
      return;
    }
    const res = await act($('save-fund'), 'fund-error', 'fund-status', () =>
      api('PUT', '/api/admin/fund', payload),
    );
    if (res !== undefined) {
      if (res && res.intake) showFund(res);
      else await loadFund();
      say('fund-status', t('saved'));
    }
  });

  function showPeriods(periods) {
    const tbody = $('periods-body');
    tbody.textContent = '';
    if (!periods.length) {
      tbody.append(el('tr', null, el('td', { colSpan: 9 }, t('no_periods'))));
      return;
    }
    for (const p of periods) {
      const edit = el(
        'button',
        { type: 'button', className: 'button button-secondary button-small', 'aria-label': `${t('period_edit')}: ${p.label}` },
        t('period_edit'),
      );
      edit.addEventListener('click', () => editPeriod(p));
      tbody.append(
        el(
          'tr',
          null,
          el('td', { className: 'wrap-cell' }, p.label),
          el('td', null, p.starts_on),
          el('td', null, p.ends_on),
          el('td', { className: 'num' }, money(p.budget)),
          el('td', { className: 'num' }, money(p.covered)),
          el('td', { className: 'num' }, money(p.remaining)),
          el('td', { className: 'num' }, money(p.paid)),
          el('td', { className: 'num' }, money(p.balance)),
          el('td', null, edit),
        ),
      );
    }
  }

  function resetPeriodForm() {
    $('period-id').value = '';
    $('period-label').value = '';
    $('period-starts').value = '';
    $('period-ends').value = '';
    $('period-budget').value = '';
    say('period-form-heading', t('period_add'));
    say('period-submit', t('period_add'));
    $('period-cancel').hidden = true;
  }

  function editPeriod(p) {
    $('period-id').value = String(p.id);
    $('period-label').value = p.label;
    $('period-starts').value = p.starts_on;
    $('period-ends').value = p.ends_on;
    $('period-budget').value = p.budget;
    say('period-form-heading', `${t('period_edit')}: ${p.label}`);
    say('period-submit', t('period_save'));
    $('period-cancel').hidden = false;
    say('period-error', '');
    say('period-status', '');
    $('period-label').focus();
  }

  $('period-cancel').addEventListener('click', () => {
    resetPeriodForm();
    $('period-label').focus();
  });

  $('period-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const id = $('period-id').value;
    const payload = {
      label: $('period-label').value.trim(),
      starts_on: $('period-starts').value,
      ends_on: $('period-ends').value,
      budget: $('period-budget').value.trim().replace(/[,\s]/g, ''),
    };
    const res = await act($('period-submit'), 'period-error', 'period-status', () =>
      id
        ? api('PUT', `/api/admin/periods/${encodeURIComponent(id)}`, payload)
        : api('POST', '/api/admin/periods', payload),
    );
    if (res !== undefined) {
      resetPeriodForm();
      if (res && res.intake) showFund(res);
      else await loadFund();
      say('period-status', t('saved'));
      loadCharts();
    }
  });

  // ---- Donations and refunds ------------------------------------------------------------

  function statusText(d) {
    if (d.processing) return t('status_processing');
    const base = t(`status_${d.status}`);
    return base.startsWith('status_') ? d.status : base;
  }

  function methodText(m) {
    const s = t(`method_${m}`);
    return s.startsWith('method_') ? m : s;
  }

  function refundable(d) {
    const a = Number(d.amount);
    const r = Number(d.refunded || 0);
    return d.status === 'succeeded' && Number.isFinite(a) && a - r > 0;
  }

  async function loadDonations() {
    say('donations-status', t('loading'));
    try {
      const res = await api('GET', '/api/donations?order=desc&limit=50');
      showDonations((res && res.items) || []);
      say('donations-status', '');
    } catch (err) {
      say('donations-status', problemText(err));
    }
  }

  function showDonations(items) {
    const tbody = $('donations-body');
    tbody.textContent = '';
    if (!items.length) {
      tbody.append(el('tr', null, el('td', { colSpan: 8 }, t('no_donations'))));
      return;
    }
    for (const d of items) {
      const date = d.received_on || String(d.created_at || '').slice(0, 10);
      const donor = el('td', { className: 'wrap-cell' }, d.donor_name || '');
      if (d.email) donor.append(el('span', { className: 'cell-sub' }, d.email));
      if (d.anonymous) donor.append(el('span', { className: 'tag' }, t('anonymous_tag')));
      if (d.after_close) donor.append(el('span', { className: 'tag' }, t('after_close_tag')));
      const action = el('td');
      const row = el(
        'tr',
        { dataset: { id: String(d.id) } },
        el('td', { className: 'num' }, d.id),
        el('td', null, date),
        donor,
        el('td', null, methodText(d.payment_method_type || d.method), d.reference ? ` (${d.reference})` : ''),
        el('td', null, statusText(d)),
        el('td', { className: 'num' }, money(d.amount)),
        el('td', { className: 'num' }, Number(d.refunded) > 0 ? money(d.refunded) : ''),
        action,
      );
      if (refundable(d)) {
        const b = el(
          'button',
          {
            type: 'button',
            className: 'button button-secondary button-small',
            'aria-expanded': 'false',
            'aria-label': `${t('refund')}: #${d.id} ${d.donor_name || ''}`,
          },
          t('refund'),
        );
        b.addEventListener('click', () => toggleRefund(row, b, d));
        action.append(b);
      }
      tbody.append(row);
    }
  }

  function leftToRefund(d) {
    const decimals = (String(d.amount).split('.')[1] || '').length;
    const left = Number(d.amount) - Number(d.refunded || 0);
    return Number.isFinite(left) ? left.toFixed(decimals) : '';
  }

  function toggleRefund(row, button, d) {
    const next = row.nextElementSibling;
    if (next && next.classList.contains('refund-row')) {
      next.remove();
      button.setAttribute('aria-expanded', 'false');
      button.focus();
      return;
    }
    const idBase = `refund-${d.id}`;
    const amount = el('input', {
      className: 'input input-amount',
      id: `${idBase}-amount`,
      type: 'text',
      inputmode: 'decimal',
      autocomplete: 'off',
      placeholder: leftToRefund(d),
      'aria-describedby': `${idBase}-error`,
    });
    const reason = el('input', {
      className: 'input',
      id: `${idBase}-reason`,
      type: 'text',
      maxlength: '500',
      required: 'required',
      autocomplete: 'off',
      'aria-describedby': `${idBase}-error`,
    });
    const error = el('p', { className: 'error', id: `${idBase}-error`, 'aria-live': 'polite' });
    // A Stripe gift may be refunded by check instead (past Alipay's or WeChat Pay's window).
    const outside = el('input', { type: 'checkbox', className: 'checkbox', id: `${idBase}-outside` });
    const outsideRow = el(
      'div',
      { className: 'field checkbox-field' },
      outside,
      el('label', { for: `${idBase}-outside` }, t('refund_outside_stripe')),
    );
    outsideRow.hidden = d.method !== 'card';
    const submit = el('button', { type: 'submit', className: 'button button-primary button-small' }, t('refund_submit'));
    const cancel = el('button', { type: 'button', className: 'button button-secondary button-small' }, t('period_cancel'));
    const formEl = el(
      'form',
      { className: 'refund-form', novalidate: 'novalidate' },
      el('label', { className: 'label', for: `${idBase}-amount` }, t('refund_amount_label')),
      amount,
      el('label', { className: 'label', for: `${idBase}-reason` }, t('refund_reason_label')),
      reason,
      outsideRow,
      error,
      el('div', { className: 'button-row' }, submit, cancel),
    );
    cancel.addEventListener('click', () => toggleRefund(row, button, d));
    // One Idempotency-Key per refund asked: sending the same form again (after a lost answer
    // or a 503) finishes that refund instead of making a second one.
    let sentBody = null;
    let refundKey = null;
    formEl.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const payload = { reason: reason.value.trim() };
      const a = amount.value.trim().replace(/[,\s]/g, '');
      if (a) payload.amount = a;
      if (outside.checked) payload.outside_stripe = true;
      if (!payload.reason) {
        error.textContent = t('error_invalid_field', { field: t('refund_reason_label') });
        reason.focus();
        return;
      }
      submit.disabled = true;
      error.textContent = '';
      const text = JSON.stringify(payload);
      if (text !== sentBody) {
        sentBody = text;
        refundKey = uuid();
      }
      try {
        const res = await api('POST', `/api/admin/donations/${encodeURIComponent(d.id)}/refund`, payload, {
          idempotencyKey: refundKey,
        });
        const done =
          res && res.state === 'pending_approval'
            ? t('refund_pending_approval')
            : res && res.status === 'pending'
              ? t('refund_pending_stripe')
              : t('refund_done');
        say('donations-status', done);
        await Promise.all([loadDonations(), loadFund()]);
        loadCharts();
        if (role === 'admin') loadApprovals();
        say('donations-status', done);
      } catch (err) {
        error.textContent = problemText(err);
        submit.disabled = false;
      }
    });
    const refundRow = el('tr', { className: 'refund-row' }, el('td', { colSpan: 8 }, formEl));
    row.after(refundRow);
    button.setAttribute('aria-expanded', 'true');
    amount.focus();
  }

  $('donations-reload').addEventListener('click', () => loadDonations());

  // ---- Offline gifts ------------------------------------------------------------------

  let offlineBody = null;
  let offlineKey = null;

  $('offline-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const payload = {
      amount: $('offline-amount').value.trim().replace(/[,\s]/g, '').replace(/^\$/, ''),
      donor_name: $('offline-donor').value.trim(),
      method: $('offline-method').value,
    };
    const email = $('offline-email').value.trim();
    const reference = $('offline-reference').value.trim();
    const received = $('offline-received').value;
    if (email) payload.email = email;
    if (reference) payload.reference = reference;
    if (received) payload.received_on = received;
    payload.locale = LANG === 'zh-CN' ? 'zh-CN' : 'en';
    const text = JSON.stringify(payload);
    if (text !== offlineBody) {
      offlineBody = text;
      offlineKey = uuid();
    }
    const res = await act($('offline-submit'), 'offline-error', 'offline-status', () =>
      api('POST', '/api/donations/offline', payload, { idempotencyKey: offlineKey }),
    );
    if (res !== undefined) {
      offlineBody = null;
      offlineKey = null;
      for (const id of ['offline-amount', 'offline-donor', 'offline-email', 'offline-reference', 'offline-received']) {
        $(id).value = '';
      }
      say('offline-status', t('offline_done'));
      loadDonations();
      loadFund();
      loadCharts();
    }
  });

  // ---- Refunds waiting for a second admin, and the audit trail (admins only) -----------

  function when(iso) {
    return String(iso || '').replace('T', ' ').slice(0, 16);
  }

  async function loadApprovals() {
    const tbody = $('approvals-body');
    let items;
    try {
      items = await api('GET', '/api/admin/approvals');
    } catch (err) {
      say('approvals-error', problemText(err));
      return;
    }
    say('approvals-error', '');
    tbody.textContent = '';
    if (!items || !items.length) {
      tbody.append(el('tr', null, el('td', { colSpan: 7 }, t('no_approvals'))));
      return;
    }
    for (const a of items) {
      const action = el('td');
      const expires = el('td', null, when(a.expires_at));
      if (a.state === 'expired') {
        expires.append(el('span', { className: 'tag' }, t('approval_expired_tag')));
      } else {
        for (const [verb, label, cls] of [
          ['approve', t('approve'), 'button-primary'],
          ['reject', t('reject'), 'button-secondary'],
        ]) {
          const b = el(
            'button',
            { type: 'button', className: `button ${cls} button-small`, 'aria-label': `${label}: #${a.id}` },
            label,
          );
          b.addEventListener('click', () => decide(a, verb, b));
          action.append(b, ' ');
        }
      }
      tbody.append(
        el(
          'tr',
          { dataset: { id: String(a.id) } },
          el('td', { className: 'num' }, a.id),
          el('td', { className: 'num' }, `#${a.donation_id}`),
          el('td', { className: 'num' }, money(a.amount)),
          el('td', { className: 'wrap-cell' }, a.requested_by),
          el('td', { className: 'wrap-cell' }, a.reason),
          expires,
          action,
        ),
      );
    }
  }

  async function decide(a, verb, button) {
    const res = await act(button, 'approvals-error', 'approvals-status', () =>
      api('POST', `/api/admin/approvals/${encodeURIComponent(a.id)}/${verb}`),
    );
    if (res !== undefined) {
      say('approvals-status', verb === 'approve' ? t('approved_done') : t('rejected_done'));
      await Promise.all([loadApprovals(), loadDonations(), loadFund()]);
      loadAudit(true);
      $('approvals-heading').focus();
    }
  }

  // ---- Staff (admins) and the signed-in account -----------------------------------------

  async function loadStaff() {
    const tbody = $('staff-body');
    let users;
    try {
      users = await api('GET', '/api/admin/users');
    } catch (err) {
      say('staff-error', problemText(err));
      return;
    }
    tbody.textContent = '';
    for (const u of users || []) {
      const action = el('td');
      const other = u.role === 'admin' ? 'treasurer' : 'admin';
      for (const [label, change] of [
        [t(other === 'admin' ? 'make_admin' : 'make_treasurer'), { role: other }],
        [t(u.disabled ? 'enable' : 'disable'), { disabled: !u.disabled }],
      ]) {
        const b = el(
          'button',
          { type: 'button', className: 'button button-secondary button-small', 'aria-label': `${label}: ${u.email}` },
          label,
        );
        b.addEventListener('click', () => changeUser(u, change, b));
        action.append(b, ' ');
      }
      const end = el(
        'button',
        { type: 'button', className: 'button button-secondary button-small', 'aria-label': `${t('end_sessions')}: ${u.email}` },
        t('end_sessions'),
      );
      end.addEventListener('click', async () => {
        const res = await act(end, 'staff-error', 'staff-status', () =>
          api('POST', `/api/admin/users/${encodeURIComponent(u.id)}/sessions/end`),
        );
        if (res !== undefined) {
          say('staff-status', t('session_ended'));
          loadStaff();
        }
      });
      action.append(end);
      tbody.append(
        el(
          'tr',
          { dataset: { id: String(u.id) } },
          el('td', { className: 'wrap-cell' }, u.email),
          el('td', null, t(`role_${u.role}`)),
          el('td', null, t(u.disabled ? 'state_disabled' : 'state_active')),
          el('td', null, t(u.mfa_enabled ? 'mfa_on' : 'mfa_off')),
          el('td', { className: 'num' }, u.active_sessions),
          action,
        ),
      );
    }
  }

  async function changeUser(u, change, button) {
    const res = await act(button, 'staff-error', 'staff-status', () =>
      api('PUT', `/api/admin/users/${encodeURIComponent(u.id)}`, change),
    );
    if (res !== undefined) {
      say('staff-status', t('staff_changed'));
      loadStaff();
      loadAudit(true);
    }
  }

  $('staff-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const payload = {
      email: $('staff-email').value.trim(),
      role: $('staff-role').value,
      password: $('staff-password').value,
    };
    const res = await act($('staff-add'), 'staff-error', 'staff-status', () =>
      api('POST', '/api/admin/users', payload),
    );
    if (res !== undefined) {
      $('staff-email').value = '';
      $('staff-password').value = '';
      say('staff-status', t('staff_added'));
      loadStaff();
    }
  });

  async function loadAccount() {
    try {
      const me = await api('GET', '/api/auth/me');
      say('account-mfa', t(me.mfa_enabled ? 'account_mfa_on' : 'account_mfa_off'));
      const sessions = await api('GET', '/api/auth/sessions');
      const tbody = $('sessions-body');
      tbody.textContent = '';
      for (const s of sessions || []) {
        const action = el('td');
        if (s.current) {
          action.append(el('span', { className: 'tag' }, t('this_session')));
        } else {
          const b = el(
            'button',
            { type: 'button', className: 'button button-secondary button-small', 'aria-label': `${t('end_session')}: ${when(s.created_at)}` },
            t('end_session'),
          );
          b.addEventListener('click', async () => {
            const res = await act(b, 'account-error', 'account-status', () =>
              api('POST', `/api/auth/sessions/${encodeURIComponent(s.id)}/end`),
            );
            if (res !== undefined) {
              say('account-status', t('session_ended'));
              loadAccount();
            }
          });
          action.append(b);
        }
        tbody.append(
          el(
            'tr',
            null,
            el('td', null, when(s.created_at)),
            el('td', null, s.client),
            el('td', { className: 'wrap-cell' }, s.user_agent.slice(0, 60)),
            action,
          ),
        );
      }
    } catch (err) {
      say('account-error', problemText(err));
    }
  }

  $('password-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const payload = {
      current_password: $('password-current').value,
      new_password: $('password-new').value,
    };
    const res = await act($('password-submit'), 'account-error', 'account-status', () =>
      api('POST', '/api/auth/password', payload),
    );
    if (res !== undefined) {
      token = res.access_token;
      $('password-current').value = '';
      $('password-new').value = '';
      say('account-status', t('password_changed'));
      loadAccount();
    }
  });

  // ---- Money out --------------------------------------------------------------------------

  async function loadDisbursements() {
    const tbody = $('disbursements-body');
    let rows;
    try {
      rows = await api('GET', '/api/disbursements');
    } catch (err) {
      say('disbursements-error', problemText(err));
      return;
    }
    tbody.textContent = '';
    const periods = new Map(((fund && fund.periods) || []).map((p) => [p.id, p.label]));
    for (const d of rows || []) {
      const action = el('td');
      if (d.state === 'pending_approval') {
        action.append(el('span', { className: 'tag' }, t('disbursement_pending')), ' ');
        if (role === 'admin') {
          for (const [verb, label] of [['approve', t('approve')], ['reject', t('reject')]]) {
            const b = el(
              'button',
              { type: 'button', className: 'button button-secondary button-small', 'aria-label': `${label}: #${d.id}` },
              label,
            );
            b.addEventListener('click', async () => {
              const res = await act(b, 'disbursements-error', 'disbursements-status', () =>
                api('POST', `/api/disbursements/${encodeURIComponent(d.id)}/${verb}`),
              );
              if (res !== undefined) {
                say('disbursements-status', verb === 'approve' ? t('disbursement_approved_done') : t('disbursement_rejected_done'));
                loadDisbursements();
                loadFund();
              }
            });
            action.append(b, ' ');
          }
        }
      } else if (d.state === 'rejected') {
        action.append(el('span', { className: 'tag' }, t('disbursement_rejected')));
      } else if (d.voided_at) {
        action.append(el('span', { className: 'tag' }, t('disbursement_voided')));
      } else if (role === 'admin') {
        const b = el(
          'button',
          { type: 'button', className: 'button button-secondary button-small', 'aria-label': `${t('void')}: #${d.id}` },
          t('void'),
        );
        b.addEventListener('click', async () => {
          const reason = window.prompt(t('void_reason'));
          if (!reason) return;
          const res = await act(b, 'disbursements-error', 'disbursements-status', () =>
            api('POST', `/api/disbursements/${encodeURIComponent(d.id)}/void`, { reason }),
          );
          if (res !== undefined) {
            say('disbursements-status', t('void_done'));
            loadDisbursements();
            loadFund();
          }
        });
        action.append(b);
      }
      tbody.append(
        el(
          'tr',
          { dataset: { id: String(d.id) } },
          el('td', { className: 'num' }, d.id),
          el('td', null, d.paid_on),
          el('td', { className: 'wrap-cell' }, d.payee),
          el('td', { className: 'num' }, money(d.amount)),
          el('td', null, d.period_id ? periods.get(d.period_id) || `#${d.period_id}` : ''),
          action,
        ),
      );
    }
  }

  $('disbursement-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const period = $('disbursement-period').value;
    const payload = {
      amount: $('disbursement-amount').value.trim(),
      payee: $('disbursement-payee').value,
      paid_on: $('disbursement-paid-on').value || new Date().toISOString().slice(0, 10),
      reference: $('disbursement-reference').value,
      public_memo: $('disbursement-public-memo').value,
      memo: $('disbursement-memo').value,
    };
    if (period) payload.period_id = Number(period);
    const res = await act($('disbursement-submit'), 'disbursements-error', 'disbursements-status', () =>
      api('POST', '/api/disbursements', payload, { idempotencyKey: uuid() }),
    );
    if (res !== undefined) {
      for (const id of ['disbursement-amount', 'disbursement-payee', 'disbursement-reference', 'disbursement-public-memo', 'disbursement-memo']) {
        $(id).value = '';
      }
      say('disbursements-status', res && res.state === 'pending_approval' ? t('disbursement_pending_done') : t('disbursement_done'));
      loadDisbursements();
      loadFund();
    }
  });

  let auditAfter = 0;

  async function loadAudit(fresh) {
    const tbody = $('audit-body');
    if (fresh) auditAfter = 0;
    let page;
    try {
      page = await api('GET', `/api/admin/audit?limit=50&after=${auditAfter}`);
    } catch (err) {
      say('audit-error', problemText(err));
      return;
    }
    say('audit-error', '');
    if (fresh) tbody.textContent = '';
    const rows = (page && page.rows) || [];
    if (fresh && !rows.length) {
      tbody.append(el('tr', null, el('td', { colSpan: 5 }, t('no_audit'))));
    }
    for (const r of rows) {
      tbody.append(
        el(
          'tr',
          null,
          el('td', { className: 'num' }, r.id),
          el('td', null, when(r.at)),
          el('td', { className: 'wrap-cell' }, r.actor),
          el('td', null, r.action),
          el('td', { className: 'wrap-cell cell-code' }, r.detail),
        ),
      );
    }
    auditAfter = page && page.next_after ? page.next_after : auditAfter;
    $('audit-more').hidden = !(page && page.next_after);
  }

  $('audit-more').addEventListener('click', () => loadAudit(false));

  // ---- Reports ------------------------------------------------------------------------

  for (const b of document.querySelectorAll('button[data-report]')) {
    b.addEventListener('click', async () => {
      const name = b.dataset.report;
      await act(b, 'reports-error', null, async () => {
        const resp = await api('GET', `/api/reports/${name}.csv`, undefined, { raw: true, accept: 'text/csv' });
        const blob = await resp.blob();
        const url = URL.createObjectURL(blob);
        const stamp = new Date().toISOString().slice(0, 10);
        const a = el('a', { href: url, download: `${name}-${stamp}.csv` });
        a.hidden = true;
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
      });
    });
  }

  // ---- Charts -------------------------------------------------------------------------

  /** Removes anything active from a parsed SVG before it joins the page. */
  function sanitizeSvg(root) {
    for (const bad of root.querySelectorAll('script, foreignObject, iframe, object, embed')) bad.remove();
    for (const node of [root, ...root.querySelectorAll('*')]) {
      for (const attr of Array.from(node.attributes)) {
        const name = attr.name.toLowerCase();
        const value = attr.value.trim().toLowerCase();
        if (name.startsWith('on')) node.removeAttribute(attr.name);
        else if ((name === 'href' || name === 'xlink:href') && !value.startsWith('#')) node.removeAttribute(attr.name);
      }
    }
    return root;
  }

  async function loadChart(box) {
    const which = box.dataset.chart;
    box.setAttribute('aria-busy', 'true');
    try {
      const resp = await api('GET', `/api/admin/charts/${which}.svg`, undefined, { raw: true, accept: 'image/svg+xml' });
      const text = await resp.text();
      const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
      const root = doc.documentElement;
      if (!root || root.nodeName.toLowerCase() !== 'svg' || doc.querySelector('parsererror')) {
        throw new Error('not an SVG');
      }
      const svg = document.importNode(sanitizeSvg(root), true);
      if (!svg.hasAttribute('role')) svg.setAttribute('role', 'img');
      if (!svg.hasAttribute('aria-label') && !svg.querySelector('title')) {
        const cap = box.parentElement && box.parentElement.querySelector('figcaption');
        if (cap) svg.setAttribute('aria-label', cap.textContent);
      }
      box.textContent = '';
      box.append(svg);
    } catch (_) {
      box.textContent = '';
      box.append(el('p', { className: 'error' }, t('chart_failed')));
    } finally {
      box.removeAttribute('aria-busy');
    }
  }

  function loadCharts() {
    for (const box of document.querySelectorAll('[data-chart]')) loadChart(box);
  }

  // Staff use the admin page in their own language too; nothing else to start until sign in.
  $('login-email').focus();
})();
