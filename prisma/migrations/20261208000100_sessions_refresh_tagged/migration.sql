-- Refresh secrets carry an HMAC tag since 2026-12-03 (src/auth/sessions.ts), which tells a rotated
-- secret (a replay: the session is revoked) from one the server never issued (a guess under a known
-- session id: 401, nothing revoked). Sessions opened before hold untagged secrets, so an untagged
-- wrong secret of theirs may still be a replay: they keep the old rule until they end. New sessions
-- are opened with refresh_tagged = true.

-- AlterTable
ALTER TABLE "sessions" ADD COLUMN     "refresh_tagged" BOOLEAN NOT NULL DEFAULT false;
