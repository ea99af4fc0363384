-- Top-ups through Paystack (issue 17, part 4): the credit packs a farm can buy, the record of
-- every signed webhook event received, and the only doors through which a payment becomes
-- credits or a refund takes them back.
--
-- A role of its own, `farmops_billing`, is what the billing function connects as. It owns
-- nothing, reads and writes no table, and can do exactly three things: record a
-- `charge.success` (paystack_record_charge), record a `refund.processed`
-- (paystack_record_refund) and record an event it could not use (paystack_record_unusable).
-- The doors decide everything that matters themselves: the pack's credits come from
-- `credit_packs` (never from the caller), the amount paid must be the pack's price in naira
-- (kobo), one Paystack reference is granted at most once (advisory lock per reference, then a
-- unique index), a refund revokes its lot and claws back what is left of it, never below zero
-- (0080's credit_claw_back_lot). The application role
-- (`farmops_app`) gets nothing here: it still cannot mint credits (0060).
--
-- The signature is checked before a door is called (the billing function, with the secret
-- key it alone holds); every door records the raw body it was given, so whatever a caller of
-- `farmops_billing` did is on the record.
--
-- Redeliveries: every delivery with a valid signature is recorded, a redelivery of a granted
-- charge (or a second refund of a refunded payment) as `duplicate`, granting (or clawing back)
-- nothing.
--
-- Expand-only: a new role, new tables and new functions.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'farmops_billing') THEN
    CREATE ROLE farmops_billing NOLOGIN NOSUPERUSER NOBYPASSRLS;
  END IF;
END $$;
GRANT USAGE ON SCHEMA public TO farmops_billing;

-- What a farm can buy: set by the operator (`farmops set-pack`).
CREATE TABLE credit_packs (
  name        text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  credits     bigint NOT NULL CHECK (credits > 0),
  price_kobo  bigint NOT NULL CHECK (price_kobo > 0),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every event whose signature was valid, with what was done about it. Append-only.
CREATE TABLE payment_events (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  received_at       timestamptz NOT NULL DEFAULT now(),
  provider          text NOT NULL DEFAULT 'paystack' CHECK (provider = 'paystack'),
  -- `charge.success`, `refund.processed`, another event name, or NULL (not readable)
  event             text CHECK (length(event) <= 100),
  -- the transaction's reference (for a refund: the reference of the payment refunded)
  reference         text CHECK (length(reference) BETWEEN 1 AND 200),
  refund_reference  text CHECK (length(refund_reference) BETWEEN 1 AND 200),
  -- the farm, when the event names one that exists
  farm_id           uuid REFERENCES farms (id),
  pack              text CHECK (length(pack) <= 100),
  amount_kobo       bigint,
  currency          text CHECK (length(currency) <= 10),
  verdict           text NOT NULL CHECK (verdict IN (
                      'granted', 'refunded', 'duplicate', 'unknown_farm', 'unknown_pack',
                      'amount_mismatch', 'wrong_currency', 'not_successful',
                      'unknown_reference', 'malformed', 'ignored')),
  detail            text CHECK (length(detail) <= 1000),
  -- granted: the lot made; refunded: the lot clawed back from
  lot_id            bigint REFERENCES credit_lots (id),
  -- granted: the pack's credits; refunded: the credits taken back
  credits           bigint CHECK (credits >= 0),
  -- refunded: the pack's credits the refund could not take back (spent, or held by open runs
  -- at that moment; what such a run returns later is taken by reconcile, 0080)
  shortfall         bigint CHECK (shortfall >= 0),
  raw               text NOT NULL CHECK (octet_length(raw) <= 65536),
  CHECK (verdict NOT IN ('granted', 'refunded')
         OR (farm_id IS NOT NULL AND lot_id IS NOT NULL AND credits IS NOT NULL
             AND reference IS NOT NULL)),
  CHECK ((verdict = 'refunded') = (shortfall IS NOT NULL)),
  CHECK (verdict <> 'refunded' OR refund_reference IS NOT NULL)
);
CREATE TRIGGER payment_events_append_only BEFORE UPDATE OR DELETE ON payment_events
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER payment_events_no_truncate BEFORE TRUNCATE ON payment_events
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
-- one grant per Paystack reference and one claw-back per payment, whatever the farm
CREATE UNIQUE INDEX payment_events_one_grant ON payment_events (reference) WHERE verdict = 'granted';
CREATE UNIQUE INDEX payment_events_one_refund ON payment_events (reference) WHERE verdict = 'refunded';
CREATE INDEX payment_events_farm ON payment_events (farm_id, id DESC);
CREATE INDEX payment_events_reference ON payment_events (reference);

-- Serialises every door call about one Paystack reference (a payment and its refunds), so a
-- redelivery racing the first delivery waits for it and then sees it committed.
CREATE FUNCTION paystack_lock_reference(ref text) RETURNS void
  LANGUAGE sql AS $$ SELECT pg_advisory_xact_lock(hashtextextended('paystack:' || ref, 0)) $$;
REVOKE ALL ON FUNCTION paystack_lock_reference(text) FROM PUBLIC;

-- A `charge.success`: granted when the farm exists, the pack exists, the payment succeeded in
-- naira and its amount is exactly the pack's price; then the pack's credits become a paid
-- lot (priority 50, farmops::credits::lots::DEFAULT_PRIORITY: after promotions, no expiry)
-- whose idempotency key is the reference. Recorded whatever the verdict. Returns
-- {"event_id", "verdict", "farm_id", "lot_id", "credits", "balance"}.
CREATE FUNCTION paystack_record_charge(raw_body text, ref text, farm uuid, pack_name text,
                                       amount bigint, currency_code text, charge_status text)
  RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  p        credit_packs%ROWTYPE;
  verdict  text;
  why      text;
  known    uuid;
  lot      bigint;
  fresh    boolean;
  bal      bigint;
  granted  bigint;
  eid      bigint;
BEGIN
  IF ref IS NULL OR length(ref) NOT BETWEEN 1 AND 200 THEN
    verdict := 'malformed';
    why := 'the event has no usable reference';
    ref := NULL;
  ELSE
    PERFORM paystack_lock_reference(ref);
  END IF;
  SELECT f.id INTO known FROM farms f WHERE f.id = farm AND f.id <> global_farm_id();
  SELECT * INTO p FROM credit_packs c WHERE c.name = pack_name;
  IF verdict IS NOT NULL THEN
    NULL;
  ELSIF EXISTS (SELECT 1 FROM payment_events e WHERE e.reference = ref AND e.verdict = 'granted') THEN
    verdict := 'duplicate';
    why := 'this reference was granted already';
  ELSIF charge_status IS DISTINCT FROM 'success' THEN
    verdict := 'not_successful';
    why := format('the charge status is %s, not success', coalesce(charge_status, 'missing'));
  ELSIF currency_code IS DISTINCT FROM 'NGN' THEN
    verdict := 'wrong_currency';
    why := format('the currency is %s, not NGN', coalesce(currency_code, 'missing'));
  ELSIF known IS NULL THEN
    verdict := 'unknown_farm';
    why := 'metadata.farm_id names no farm';
  ELSIF p.name IS NULL THEN
    verdict := 'unknown_pack';
    why := format('metadata.pack %s is not a pack', coalesce(quote_literal(pack_name), 'missing'));
  ELSIF amount IS DISTINCT FROM p.price_kobo THEN
    verdict := 'amount_mismatch';
    why := format('paid %s kobo; pack %s costs %s kobo', coalesce(amount::text, 'nothing'),
                  p.name, p.price_kobo);
  ELSE
    SELECT a.lot_id, a.granted, a.balance INTO lot, fresh, bal
      FROM credit_add_lot(known, p.credits, 'paid', 50, now(), NULL, 'payment', ref, 'paystack',
                          format('Paystack payment %s: pack %s', ref, p.name)) a;
    IF fresh THEN
      verdict := 'granted';
      granted := p.credits;
      why := format('pack %s: %s credits for %s kobo', p.name, p.credits, p.price_kobo);
    ELSE
      verdict := 'duplicate';
      why := format('the farm already has lot %s with this reference as its key', lot);
    END IF;
  END IF;
  INSERT INTO payment_events (event, reference, farm_id, pack, amount_kobo, currency, verdict,
                              detail, lot_id, credits, raw)
  VALUES ('charge.success', ref, known, left(pack_name, 100), amount, left(currency_code, 10),
          verdict, why, lot, granted, raw_body)
  RETURNING id INTO eid;
  RETURN jsonb_build_object('event_id', eid, 'verdict', verdict, 'detail', why, 'farm_id', known,
                            'lot_id', lot, 'credits', granted, 'balance', bal);
END $$;

-- A `refund.processed` of a granted payment (in naira, at most the amount paid): revokes that
-- payment's lot and claws back what is left of it, up to the pack's credits, never below zero
-- (credit_claw_back_lot: an `adjust` leg); the rest is the shortfall, recorded. A refund,
-- partial or full, revokes the whole lot (issue 17: "claw back what is left of that lot"), so
-- a payment is refunded once: a later refund of it is a duplicate. Returns
-- {"event_id", "verdict", "farm_id", "lot_id", "credits" (clawed back), "shortfall", "balance"}.
CREATE FUNCTION paystack_record_refund(raw_body text, ref text, refund_ref text, amount bigint,
                                       currency_code text)
  RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  paid     payment_events%ROWTYPE;
  verdict  text;
  why      text;
  target   bigint;
  clawed   bigint;
  short    bigint;
  bal      bigint;
  eid      bigint;
BEGIN
  IF ref IS NULL OR length(ref) NOT BETWEEN 1 AND 200
     OR refund_ref IS NULL OR length(refund_ref) NOT BETWEEN 1 AND 200 THEN
    verdict := 'malformed';
    why := 'the refund has no usable transaction or refund reference';
    ref := CASE WHEN length(ref) BETWEEN 1 AND 200 THEN ref END;
    refund_ref := CASE WHEN length(refund_ref) BETWEEN 1 AND 200 THEN refund_ref END;
  ELSE
    PERFORM paystack_lock_reference(ref);
    SELECT * INTO paid FROM payment_events e WHERE e.reference = ref AND e.verdict = 'granted';
  END IF;
  IF verdict IS NOT NULL THEN
    NULL;
  ELSIF paid.id IS NULL THEN
    verdict := 'unknown_reference';
    why := 'no payment with this reference was granted';
  ELSIF EXISTS (SELECT 1 FROM payment_events e
                 WHERE e.reference = ref AND e.verdict = 'refunded') THEN
    verdict := 'duplicate';
    why := 'this payment was refunded already: its lot is revoked';
  ELSIF currency_code IS DISTINCT FROM 'NGN' THEN
    verdict := 'wrong_currency';
    why := format('the currency is %s, not NGN', coalesce(currency_code, 'missing'));
  ELSIF amount IS NULL OR amount <= 0 OR amount > paid.amount_kobo THEN
    verdict := 'amount_mismatch';
    why := format('refunded %s kobo of a %s kobo payment', coalesce(amount::text, 'nothing'),
                  paid.amount_kobo);
  ELSE
    target := paid.credits;
    SELECT a.clawed, a.shortfall, a.balance INTO clawed, short, bal
      FROM credit_claw_back_lot(paid.farm_id, paid.lot_id, target, 'paystack',
                                format('Paystack refund %s of payment %s', refund_ref, ref)) a;
    verdict := 'refunded';
    why := format('refunded %s of %s kobo: lot %s revoked, %s of its %s credits taken back, %s spent or held',
                  amount, paid.amount_kobo, paid.lot_id, clawed, target, short);
  END IF;
  INSERT INTO payment_events (event, reference, refund_reference, farm_id, amount_kobo, currency,
                              verdict, detail, lot_id, credits, shortfall, raw)
  VALUES ('refund.processed', ref, refund_ref, paid.farm_id, amount, left(currency_code, 10),
          verdict, why, CASE WHEN verdict = 'refunded' THEN paid.lot_id END, clawed, short,
          raw_body)
  RETURNING id INTO eid;
  RETURN jsonb_build_object('event_id', eid, 'verdict', verdict, 'detail', why,
                            'farm_id', paid.farm_id,
                            'lot_id', CASE WHEN verdict = 'refunded' THEN paid.lot_id END,
                            'credits', clawed,
                            'shortfall', short, 'balance', bal);
END $$;

-- An event with a valid signature that is not readable (`malformed`) or not one the billing
-- acts on (`ignored`): recorded, nothing else.
CREATE FUNCTION paystack_record_unusable(raw_body text, event_name text, ref text,
                                         unusable text, why text)
  RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  eid bigint;
BEGIN
  IF unusable IS NULL OR unusable NOT IN ('malformed', 'ignored') THEN
    RAISE EXCEPTION 'an unusable event is malformed or ignored, not %', unusable
      USING ERRCODE = 'check_violation';
  END IF;
  INSERT INTO payment_events (event, reference, verdict, detail, raw)
  VALUES (left(event_name, 100), CASE WHEN length(ref) BETWEEN 1 AND 200 THEN ref END,
          unusable, left(why, 1000), raw_body)
  RETURNING id INTO eid;
  RETURN jsonb_build_object('event_id', eid, 'verdict', unusable, 'detail', left(why, 1000));
END $$;

REVOKE ALL ON FUNCTION paystack_record_charge(text, text, uuid, text, bigint, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION paystack_record_refund(text, text, text, bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION paystack_record_unusable(text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paystack_record_charge(text, text, uuid, text, bigint, text, text) TO farmops_billing;
GRANT EXECUTE ON FUNCTION paystack_record_refund(text, text, text, bigint, text) TO farmops_billing;
GRANT EXECUTE ON FUNCTION paystack_record_unusable(text, text, text, text, text) TO farmops_billing;
