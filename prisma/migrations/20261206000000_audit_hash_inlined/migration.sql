-- audit_event_hash was declared IMMUTABLE, but its body calls STABLE functions (jsonb_build_array,
-- EXTRACT on a timestamptz). PostgreSQL inlines a SQL function only when its body is no more
-- volatile than its label, so it never inlined this one: the insert trigger (audit_events_link) ran
-- it through the SQL-function executor, which parsed and planned its body again in every
-- transaction — a third of the database's time per audited write. Labelled STABLE (what it is), it
-- is inlined into the trigger's expression and into audit_verify's walk. The formula is unchanged,
-- so every stored hash still verifies. Measured with pgbench on PostgreSQL 15 (4 clients, a project
-- and its event in one statement): 2,800–3,150 → 4,050–4,090 statements/s; audit_verify over 86,000
-- events 3.7 → 3.0 s. test/audit-chain.test.ts checks that the planner inlines it.
ALTER FUNCTION audit_event_hash("audit_events") STABLE;
