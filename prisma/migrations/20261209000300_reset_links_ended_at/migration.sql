-- A password-reset link works only if it was asked for after its user's links last ended
-- (src/people/reset-links.ts): a password change, a completed reset and a deactivation each set
-- users.reset_links_ended_at, in their commit. The link's own request time is what is compared, not
-- when its job ran: a reset asked for before a deactivation and mailed after the reactivation (the
-- worker was down meanwhile) no longer sets the password; nor does a link minted by a job racing
-- the change. Marking the outstanding links used did not reach links not minted yet.
-- Links ended by a password change before this migration stay ended (used_at, and the backfill).

-- AlterTable
ALTER TABLE "users" ADD COLUMN     "reset_links_ended_at" TIMESTAMPTZ(3);

-- AlterTable
ALTER TABLE "password_reset_tokens" ADD COLUMN     "requested_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP;

-- The tables' owner passes the owner_full_access policy, so every tenant's rows are updated.
UPDATE "users" SET "reset_links_ended_at" = "password_changed_at" WHERE "password_changed_at" IS NOT NULL;
