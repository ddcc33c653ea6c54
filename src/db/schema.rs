//! The one portable schema for both engines (BigInt, Integer, Text, Bool, Date, Timestamp).
//! Every amount is a BIGINT of minor units (`*_minor`).

diesel::table! {
    funds (id) {
        id -> BigInt,
        name -> Text,
        currency -> Text,
        target_minor -> BigInt,
        raised_minor -> BigInt,
        donation_count -> BigInt,
        reserved_minor -> BigInt,
        cap_mode -> Text,
        intake_state -> Text,
        intake_message -> Text,
        intake_changed_at -> Timestamp,
        ledger_seq -> BigInt,
        last_donation_id -> BigInt,
        ledger_head -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    periods (id) {
        id -> BigInt,
        label -> Text,
        starts_on -> Date,
        ends_on -> Date,
        budget_minor -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    donations (id) {
        id -> BigInt,
        method -> Text,
        status -> Text,
        amount_minor -> BigInt,
        refunded_minor -> BigInt,
        disputed_minor -> BigInt,
        fee_minor -> Nullable<BigInt>,
        net_minor -> Nullable<BigInt>,
        currency -> Text,
        donor_name -> Text,
        email -> Nullable<Text>,
        anonymous -> Bool,
        locale -> Text,
        reference -> Nullable<Text>,
        received_on -> Nullable<Date>,
        payment_intent_id -> Nullable<Text>,
        after_close -> Bool,
        recorded_by -> Nullable<Text>,
        created_at -> Timestamp,
        succeeded_at -> Nullable<Timestamp>,
        charge_id -> Nullable<Text>,
        reserved_until -> Nullable<Timestamp>,
        dispute_status -> Nullable<Text>,
        payout_id -> Nullable<Text>,
        fee_currency -> Nullable<Text>,
        settled_minor -> Nullable<BigInt>,
        exchange_rate -> Nullable<Text>,
        processing_since -> Nullable<Timestamp>,
        fee_covered_minor -> BigInt,
        payment_method_type -> Nullable<Text>,
    }
}

diesel::table! {
    payouts (id) {
        id -> Text,
        amount_minor -> BigInt,
        currency -> Text,
        status -> Text,
        arrival_date -> Nullable<BigInt>,
        created -> BigInt,
        updated_at -> Timestamp,
        reconciled_at -> Nullable<Timestamp>,
        matched -> Integer,
        missing_in_ledger -> Integer,
        missing_in_stripe -> Integer,
        differences -> Integer,
        report -> Text,
    }
}

diesel::table! {
    stripe_events (event_id) {
        event_id -> Text,
        event_type -> Text,
        payment_intent_id -> Nullable<Text>,
        charge_id -> Nullable<Text>,
        created -> BigInt,
        received_at -> Timestamp,
        applied_at -> Nullable<Timestamp>,
        fact -> Text,
    }
}

diesel::table! {
    ledger_entries (seq) {
        seq -> BigInt,
        created_at -> Timestamp,
        kind -> Text,
        donation_id -> Nullable<BigInt>,
        amount_minor -> BigInt,
        count_delta -> BigInt,
        raised_after_minor -> BigInt,
        target_after_minor -> BigInt,
        intake_after -> Text,
        memo -> Text,
        prev_hash -> Text,
        hash -> Text,
        hash_version -> Integer,
        disbursed_after_minor -> BigInt,
        public_memo -> Text,
    }
}

diesel::table! {
    disbursements (id) {
        id -> BigInt,
        amount_minor -> BigInt,
        payee -> Text,
        period_id -> Nullable<BigInt>,
        paid_on -> Date,
        reference -> Text,
        memo -> Text,
        public_memo -> Text,
        created_at -> Timestamp,
        created_by -> Text,
        entry_seq -> Nullable<BigInt>,
        voided_at -> Nullable<Timestamp>,
        voided_by -> Nullable<Text>,
        void_entry_seq -> Nullable<BigInt>,
        state -> Text,
        approved_by -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        email -> Text,
        password_hash -> Text,
        role -> Text,
        created_at -> Timestamp,
        disabled -> Bool,
        totp_secret -> Nullable<Text>,
        totp_enabled_at -> Nullable<Timestamp>,
        totp_last_step -> Nullable<BigInt>,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> BigInt,
        user_id -> BigInt,
        code_hash -> Text,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    staff_sessions (id) {
        id -> Text,
        user_id -> BigInt,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
        ended_by -> Nullable<Text>,
        client -> Text,
        user_agent -> Text,
    }
}

diesel::table! {
    idempotency_keys (scope_key) {
        scope_key -> Text,
        request_hash -> Text,
        status_code -> Integer,
        response_body -> Text,
        created_at -> Timestamp,
        donation_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> Timestamp,
        actor -> Text,
        action -> Text,
        detail -> Text,
    }
}

diesel::table! {
    lookup_codes (id) {
        id -> BigInt,
        email -> Text,
        code_hash -> Text,
        link_hash -> Text,
        attempts -> Integer,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        spent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        kind -> Text,
        dedupe_key -> Text,
        donation_id -> Nullable<BigInt>,
        locale -> Text,
        payload -> Text,
        created_at -> Timestamp,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        sent_at -> Nullable<Timestamp>,
        claim_token -> Nullable<Text>,
        failed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    login_limits (key) {
        key -> Text,
        tat_us -> BigInt,
    }
}

diesel::table! {
    refund_requests (id) {
        id -> BigInt,
        idempotency_key -> Nullable<Text>,
        request_hash -> Text,
        donation_id -> BigInt,
        amount_minor -> BigInt,
        actor -> Text,
        reason -> Text,
        state -> Text,
        stripe_refund_id -> Nullable<Text>,
        status_code -> Nullable<Integer>,
        response_body -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        approved_by -> Nullable<Text>,
        outside_stripe -> Bool,
    }
}

diesel::joinable!(ledger_entries -> donations (donation_id));
diesel::joinable!(refund_requests -> donations (donation_id));
diesel::joinable!(outbox -> donations (donation_id));
diesel::joinable!(recovery_codes -> users (user_id));
diesel::joinable!(staff_sessions -> users (user_id));
diesel::joinable!(disbursements -> periods (period_id));
diesel::allow_tables_to_appear_in_same_query!(
    funds,
    periods,
    donations,
    ledger_entries,
    users,
    recovery_codes,
    staff_sessions,
    disbursements,
    idempotency_keys,
    audit_log,
    outbox,
    stripe_events,
    payouts,
    login_limits,
    refund_requests,
    lookup_codes,
);
