// Password-reset links end when the password changes, whichever way it changes, and when the user
// is deactivated: every link asked for before then stops working, minted or not yet.
/**
 * The user-row data that ends every password-reset link of the user asked for until now, merged
 * into the update that sets the new password or deactivates the user, so it commits with it: it
 * stamps `users.reset_links_ended_at`, which `liveLinkUser` compares with each link's request time
 * (OWASP Forgot Password Cheat Sheet: a reset token is single-use and dies with a successful change). A link mailed before — or read by someone else since — cannot set the
 * password, nor can one a late job mints for a request made before (a worker that was down, a retry).
 *
 * The times are the API instances' clocks (ms), as the request's `requestedAt` is: instances a few
 * milliseconds apart could misjudge a request made within those milliseconds of the end.
 */
export const resetLinksEnded = (): { resetLinksEndedAt: Date } => ({ resetLinksEndedAt: new Date() })

/**
 * The `where` for a user whose reset links asked for at `requestedAt` still work: active, and whose
 * links have not ended since (resetLinksEnded). Used by the email job (no link minted for a dead
 * request) and by the confirmation (in the statement that sets the password, so a deactivation or
 * change committed meanwhile is seen).
 */
export const liveLinkUser = (requestedAt: Date) => ({
  active: true,
  OR: [{ resetLinksEndedAt: null }, { resetLinksEndedAt: { lt: requestedAt } }],
})
