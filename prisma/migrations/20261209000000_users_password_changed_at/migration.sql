-- When a user's password last changed (POST /v1/me/password, a password-reset confirmation). The
-- password-reset email job reads it: a reset asked for before the password changed mails no link
-- when its job runs after the change (a queue that was down, a retry), as the change already ended
-- the links mailed before it (src/people/reset-links.ts). NULL: not changed since this column exists.

-- AlterTable
ALTER TABLE "users" ADD COLUMN     "password_changed_at" TIMESTAMPTZ(3);
