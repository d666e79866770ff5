-- The change feed read by transaction instead of by clock (src/cluster/change-feed.ts).
--
-- Before: each read asked for the rows stamped after the previous read's clock minus 60 s, because a
-- row is stamped when the change is made and becomes visible only at its commit. So every instance
-- read the last minute of changes again four times a second (after a bulk revocation of 1,000
-- sessions: 240 reads of the same 1,000 rows per instance), and a transaction committing more than
-- 60 s after its change was missed.
--
-- Now: each row carries the id of the transaction that wrote it (changed_by, xid8), and each read
-- returns, besides the rows, its own snapshot (pg_snapshot: xmin:xmax:the transactions in progress).
-- The next read asks for the rows written by transactions that the snapshot did not see as ended:
-- those in progress then (changed_by in its list) and those begun after it (changed_by >= its xmax).
-- Every other transaction had ended, so its changes were visible to that read or never will be. A
-- change committed late is read once it commits, however late; a change is answered once (a long
-- transaction elsewhere costs nothing more than its own changes).
ALTER TABLE "change_feed" ADD COLUMN "changed_by" xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX "change_feed_changed_by_idx" ON "change_feed"("changed_by");

-- As before (one row per changed subject, only its own: an index probe), now with the writer's
-- transaction id.
CREATE OR REPLACE FUNCTION app_record_change() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$
  BEGIN
    INSERT INTO public.change_feed (kind, subject_id, changed_at, changed_by) VALUES (TG_ARGV[0], OLD.id, clock_timestamp(), pg_current_xact_id())
      ON CONFLICT (kind, subject_id) DO UPDATE SET changed_at = excluded.changed_at, changed_by = excluded.changed_by;
    RETURN NULL;
  END
  $$;

-- What the instances poll: the cursor for the next read (this statement's snapshot, as text: a plain
-- string through every driver), which server answered (when it started, as epoch seconds: a cursor
-- means something on one server only — a promoted replica, a restored backup or a crash that lost
-- commits may hand out transaction ids that the cursor takes for ended, and their changes would be
-- skipped; the instance drops everything when it changes, a restart included) and the rows written by
-- transactions that `cursor` did not see as ended, with their writer. `cursor` null: the cursor only
-- (a first read; the instance then drops what it cached before). STABLE, so the rows and the snapshot
-- answered are the same snapshot. Rows changed more than ten minutes ago are never answered: the API
-- role may learn which ids changed lately, not a day of every tenant's changes (so a transaction that
-- commits a change more than ten minutes after making it is missed: README "Caches", known limit).
DROP FUNCTION app_changes_since(timestamptz);
CREATE FUNCTION app_changes_after(cursor pg_snapshot)
  RETURNS TABLE ("next" text, "server" text, "kinds" text[], "ids" text[], "writers" text[])
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$ SELECT pg_current_snapshot()::text,
               extract(epoch FROM pg_postmaster_start_time())::text,
               coalesce(array_agg(c.kind), '{}'),
               coalesce(array_agg(c.subject_id::text), '{}'),
               coalesce(array_agg(c.changed_by::text), '{}')
        FROM public.change_feed c
        WHERE cursor IS NOT NULL
          AND (c.changed_by >= pg_snapshot_xmax(cursor) OR c.changed_by = ANY (ARRAY(SELECT pg_snapshot_xip(cursor))))
          AND c.changed_at > statement_timestamp() - interval '10 minutes' $$;
REVOKE ALL ON FUNCTION app_changes_after(pg_snapshot) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_changes_after(pg_snapshot) TO saas_app;
