/* global Option, location, history */
// The tenant web page: signs in on the httpOnly-cookie flow and calls the JSON API of this host.
// No storage API is used: the session lives only in the cookies the API sets. Unsafe requests carry
// X-CSRF-Token, copied from the CSRF cookie (the one cookie scripts may read). On a 401 the page
// refreshes the session once (POST /v1/auth/refresh, cookie + CSRF header; not when a refresh
// completed since the request was sent) and retries once.
'use strict'
;(function () {
  // Production names carry the __Host- prefix; development (plain http) names do not.
  const CSRF_COOKIES = ['__Host-csrf', 'csrf']
  const STATUSES = [['todo', 'To do'], ['doing', 'Doing'], ['done', 'Done']]
  const $ = (id) => document.getElementById(id)

  function readCookie (name) {
    for (const part of document.cookie.split(';')) {
      const eq = part.indexOf('=')
      if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim())
    }
    return null
  }
  function csrfToken () {
    for (const name of CSRF_COOKIES) {
      const value = readCookie(name)
      if (value) return value
    }
    return null
  }

  class ApiError extends Error {
    constructor (status, code, message, retryAfter) {
      super(message)
      this.status = status
      this.code = code
      this.retryAfter = retryAfter
    }
  }

  async function send (method, path, body) {
    const headers = { accept: 'application/json' }
    if (body !== undefined) headers['content-type'] = 'application/json'
    if (method !== 'GET') {
      const token = csrfToken()
      if (token) headers['x-csrf-token'] = token
    }
    try {
      return await fetch(path, { method, headers, credentials: 'include', cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) })
    } catch {
      throw new ApiError(0, 'NETWORK', 'Cannot reach the server. Check your connection and try again.')
    }
  }

  async function failure (res) {
    let code = 'HTTP_' + res.status
    let message = res.statusText
    try {
      const body = await res.json()
      if (body && body.error) ({ code, message } = body.error)
    } catch { /* not JSON */ }
    return new ApiError(res.status, code, message, Number(res.headers.get('retry-after')) || null)
  }

  // One refresh at a time: the refresh token rotates, so parallel 401s must share one exchange.
  // Across tabs too ("two tabs, one session"): the tabs share the refresh cookie, and two tabs
  // presenting it at once would look like a replay and sign both out. A Web Lock serializes them;
  // the second tab then sends the cookie the first one's refresh just set.
  // Resolves true (refreshed) or false (no usable session: 401, or 403 for a CSRF cookie that does
  // not match); rejects with the ApiError of a refresh that failed for another reason (network, 429,
  // 503 while the database restarts): the session may well be intact, so that is no sign-out.
  let refreshing = null
  let refreshed = 0 // refreshes this page completed
  function refreshSession () {
    if (!refreshing) {
      const exchange = async () => {
        if (!csrfToken()) return false // no session in this browser
        const res = await send('POST', '/v1/auth/refresh')
        if (res.ok) refreshed++
        if (res.ok || res.status === 401 || res.status === 403) return res.ok
        throw await failure(res)
      }
      refreshing = (navigator.locks ? navigator.locks.request('tenant-api-refresh', exchange) : exchange())
        .finally(() => { refreshing = null })
    }
    return refreshing
  }

  async function api (method, path, body) {
    const refreshedBefore = refreshed
    let res = await send(method, path, body)
    if (res.status === 401) {
      // A 401 to a request sent before a refresh that has since completed only needs a retry with the
      // new access cookie. Refreshing again would rotate the token for nothing, and a reload cutting
      // that answer off would leave the browser a rotated-out secret: a replay, and the user signed out.
      const stale = refreshed !== refreshedBefore
      if (!stale && !(await refreshSession())) throw new ApiError(401, 'SESSION_EXPIRED', 'Session expired')
      res = await send(method, path, body)
      if (res.status === 401) throw new ApiError(401, 'SESSION_EXPIRED', 'Session expired')
    }
    if (!res.ok) throw await failure(res)
    return res.status === 204 ? null : res.json()
  }

  function describe (error) {
    switch (error.code) {
      case 'INVALID_CREDENTIALS': return 'Wrong email or password.'
      case 'RATE_LIMITED': return 'Too many attempts. Please wait' + (error.retryAfter ? ' ' + error.retryAfter + ' seconds' : ' a moment') + ' and try again.'
      case 'SESSION_EXPIRED':
      case 'UNAUTHORIZED': return 'Your session has expired. Please sign in again.'
      case 'CSRF_FAILED': return 'The security check failed. Please sign in again.'
      case 'FORBIDDEN': return 'Your role does not allow this.'
      case 'NOT_FOUND': return 'That item no longer exists. The page has been reloaded.'
      case 'VALIDATION_FAILED': return 'Please check what you entered (' + error.message + ').'
      case 'NETWORK': return error.message
      case 'SERVICE_UNAVAILABLE': return 'The service is busy or restarting. Please try again in a moment.'
      default: return 'Something went wrong (' + (error.message || error.code) + '). Please try again.'
    }
  }

  function showMessage (text) {
    const box = $('message')
    box.textContent = text || ''
    box.hidden = !text
  }

  function showSignIn (message) {
    $('loading').hidden = true
    $('app').hidden = true
    $('who').hidden = true
    $('projects').replaceChildren()
    $('api-keys').hidden = true
    $('api-key-list').replaceChildren()
    showNewKey(null)
    $('activity-list').replaceChildren()
    $('activity').hidden = true
    $('tenant-name').textContent = 'Sign in'
    document.title = 'Sign in'
    hidePeopleScreens()
    $('signin').hidden = false
    showMessage(message)
    $('signin-form').elements.namedItem('email').focus()
  }

  // Any failure of a signed-in action: a lost session goes back to the sign-in form.
  function handle (error) {
    if (error.code === 'SESSION_EXPIRED' || error.code === 'CSRF_FAILED') return showSignIn(describe(error))
    showMessage(describe(error))
    if (error.code === 'NOT_FOUND') load().catch(handle)
  }

  async function load () {
    const [tenant, me, projects] = await Promise.all([api('GET', '/v1/tenant'), api('GET', '/v1/me'), api('GET', '/v1/projects?limit=100')])
    const tasks = await Promise.all(projects.data.map((p) => api('GET', '/v1/projects/' + encodeURIComponent(p.id) + '/tasks?limit=100')))
    $('tenant-name').textContent = tenant.name
    document.title = tenant.name + ' · Projects'
    $('user-name').textContent = me.name + ' (' + me.email + ', ' + me.role + ')'
    $('who').hidden = false
    $('signin').hidden = true
    $('loading').hidden = true
    $('app').hidden = false
    $('projects').replaceChildren(...projects.data.map((p, i) => projectItem(p, tasks[i].data)))
    $('empty').hidden = projects.data.length > 0
    // The API keys panel: admins and owners only (the API refuses the others anyway).
    const managesKeys = me.role === 'owner' || me.role === 'admin'
    $('api-keys').hidden = !managesKeys
    if (managesKeys) await loadKeys()
    canSeeActivity = me.role === 'owner' || me.role === 'admin'
    $('activity').hidden = !canSeeActivity
    if (canSeeActivity) await loadActivity()
    showInvitePanel(me)
  }

  // The audit log's latest events (GET /v1/audit-events: owners and admins only; members never see
  // the section). Names come from the users list when the viewer may read it, else the actor's id.
  let canSeeActivity = false
  async function loadActivity () {
    const [events, users] = await Promise.all([api('GET', '/v1/audit-events?limit=20'), api('GET', '/v1/users?limit=100')])
    const names = new Map(users.data.map((u) => [u.id, u.name]))
    $('activity-list').replaceChildren(...events.data.map((e) => activityRow(e, names)))
    $('activity-empty').hidden = events.data.length > 0
  }

  function activityRow (event, names) {
    const row = document.createElement('tr')
    row.dataset.action = event.action
    const who = event.actor.type === 'user'
      ? (names.get(event.actor.id) || 'a deleted user')
      : event.actor.type === 'platform' ? 'platform operator' : event.actor.type === 'api_key' ? 'API key' : 'system'
    const details = Object.entries(event.data || {}).map(([k, v]) => k + ': ' + (typeof v === 'string' ? v : JSON.stringify(v))).join(', ')
    for (const [text, cls] of [[new Date(event.at).toLocaleString(), ''], [who, ''], [event.action, ''], [details, 'details']]) {
      const cell = document.createElement('td')
      cell.textContent = text // never innerHTML: event data is user input
      if (cls) cell.className = cls
      row.append(cell)
    }
    return row
  }

  // API keys: the key itself is only in the create answer; it is shown once, in the page's memory
  // only (never stored), until "Done" or the next load.
  function when (value) {
    return value ? new Date(value).toLocaleString() : 'never'
  }

  async function loadKeys () {
    const keys = await api('GET', '/v1/api-keys?limit=100')
    $('api-key-list').replaceChildren(...keys.data.map(keyRow))
    $('no-keys').hidden = keys.data.length > 0
  }

  /** A "Revoke" link-style button named `label` for screen readers (API keys, invitations). */
  function revokeButton (label, onClick) {
    const button = document.createElement('button')
    button.type = 'button'
    button.className = 'link'
    button.textContent = 'Revoke'
    button.setAttribute('aria-label', label)
    button.addEventListener('click', onClick)
    return button
  }

  function keyRow (key) {
    const row = document.createElement('tr')
    row.dataset.keyId = key.id
    if (key.revokedAt) row.dataset.revoked = ''
    const expired = key.expiresAt && new Date(key.expiresAt) <= new Date()
    const status = key.revokedAt ? 'revoked' : expired ? 'expired' : 'active'
    for (const text of [key.name, key.prefix + '…', key.scopes.join(', '), when(key.createdAt), when(key.lastUsedAt), status]) {
      const cell = document.createElement('td')
      cell.textContent = text
      row.append(cell)
    }
    const action = document.createElement('td')
    if (status !== 'revoked') {
      const revoke = revokeButton('Revoke ' + key.name, () => {
        revoke.disabled = true
        api('DELETE', '/v1/api-keys/' + encodeURIComponent(key.id)).then(loadKeys).then(() => showMessage(null)).catch((error) => { revoke.disabled = false; handle(error) })
      })
      action.append(revoke)
    }
    row.append(action)
    return row
  }

  function showNewKey (key) {
    $('new-key-value').textContent = key || ''
    $('new-key').hidden = !key
    $('copy-key').textContent = 'Copy key'
  }

  function projectItem (project, tasks) {
    const item = $('project-template').content.firstElementChild.cloneNode(true)
    item.dataset.projectId = project.id
    item.querySelector('.project-name').textContent = project.name
    const list = item.querySelector('.tasks')
    list.replaceChildren(...tasks.map((t) => taskItem(project.id, t)))
    const form = item.querySelector('.task-form')
    form.addEventListener('submit', (event) => {
      event.preventDefault()
      const title = form.elements.namedItem('title').value.trim()
      if (!title) return
      api('POST', '/v1/projects/' + encodeURIComponent(project.id) + '/tasks', { title }).then((task) => {
        list.prepend(taskItem(project.id, task))
        form.reset()
        showMessage(null)
      }).catch(handle)
    })
    return item
  }

  function taskItem (projectId, task) {
    const li = document.createElement('li')
    li.className = 'task'
    li.dataset.status = task.status
    const title = document.createElement('span')
    title.className = 'task-title'
    title.textContent = task.title
    const select = document.createElement('select')
    select.setAttribute('aria-label', 'Status of ' + task.title)
    for (const [value, label] of STATUSES) select.add(new Option(label, value, false, value === task.status))
    select.addEventListener('change', () => {
      const previous = li.dataset.status
      api('PATCH', '/v1/projects/' + encodeURIComponent(projectId) + '/tasks/' + encodeURIComponent(task.id), { status: select.value })
        .then((changed) => { li.dataset.status = changed.status; showMessage(null) })
        .catch((error) => { select.value = previous; handle(error) })
    })
    li.append(title, select)
    return li
  }

  // ---- People: forgot / reset password, accept invitation, invite panel ----
  // Each screen is cloned from its <template> when shown and removed when left.

  function hidePeopleScreens () {
    $('people-screen').replaceChildren()
  }

  /** Shows the screen of template `id` instead of everything else; wires its form to `submit(form)`. */
  function showScreen (id, title, submit) {
    $('loading').hidden = true
    $('app').hidden = true
    $('signin').hidden = true
    const screen = $(id).content.firstElementChild.cloneNode(true)
    $('people-screen').replaceChildren(screen)
    $('tenant-name').textContent = title
    document.title = title
    onSubmit(screen.querySelector('form'), submit)
    return screen
  }

  /** The link's token; the address bar and history keep no copy of it (it is a secret). */
  function takeToken () {
    const token = new URLSearchParams(location.search).get('token')
    history.replaceState(null, '', location.pathname)
    return token
  }

  function describeLinkError (error) {
    return error.code === 'BAD_REQUEST' ? 'This link is invalid, already used or expired. Ask for a new one.' : describe(error)
  }

  function onSubmit (form, handler) {
    form.addEventListener('submit', async (event) => {
      event.preventDefault()
      const button = form.querySelector('button[type=submit]')
      button.disabled = true
      try {
        await handler(form)
      } finally {
        button.disabled = false
      }
    })
  }

  function showForgot () {
    const email = $('signin-form').elements.namedItem('email').value
    showMessage(null)
    const screen = showScreen('tpl-forgot', 'Forgot password?', async (form) => {
      const address = form.elements.namedItem('email').value.trim()
      try {
        const res = await send('POST', '/v1/auth/password-reset', { email: address })
        if (!res.ok) throw await failure(res)
        // Beyond the address's budget the API sends nothing, still 202: the last email's link works.
        showSignIn('If an account exists for ' + address + ', we have emailed it a link to reset the password. Asked several times? Only a few emails are sent per address; use the newest one you received.')
      } catch (error) {
        showMessage(describe(error))
      }
    })
    screen.querySelector('input[name=email]').value = email
    screen.querySelector('.back').addEventListener('click', () => showSignIn(null))
  }

  function showReset (token) {
    showScreen('tpl-reset', 'Reset password', async (form) => {
      try {
        const res = await send('POST', '/v1/auth/password-reset/confirm', { token, password: form.elements.namedItem('password').value })
        if (!res.ok) throw await failure(res)
        history.replaceState(null, '', '/')
        showSignIn('Your password has been changed. Sign in with the new password.')
      } catch (error) {
        showMessage(describeLinkError(error))
      }
    })
  }

  function showAccept (token) {
    showScreen('tpl-accept', 'Accept invitation', async (form) => {
      try {
        const res = await send('POST', '/v1/invitations/accept', {
          token, name: form.elements.namedItem('name').value.trim(), password: form.elements.namedItem('password').value,
        })
        if (!res.ok) throw await failure(res)
        history.replaceState(null, '', '/')
        hidePeopleScreens()
        showMessage(null)
        await load()
      } catch (error) {
        showMessage(describeLinkError(error))
      }
    })
  }

  /** Wires "Forgot password?"; true when the address is a reset or invitation link (its screen is shown). */
  function startPeople () {
    $('forgot-link').addEventListener('click', showForgot)
    if (location.pathname === '/reset-password') {
      showReset(takeToken())
      return true
    }
    if (location.pathname === '/accept-invitation') {
      showAccept(takeToken())
      return true
    }
    return false
  }

  function showInvitePanel (me) {
    const slot = $('invite-slot')
    if (me.role !== 'owner' && me.role !== 'admin') return slot.replaceChildren()
    if (!slot.firstElementChild) {
      const panel = $('tpl-invite').content.firstElementChild.cloneNode(true)
      slot.replaceChildren(panel)
      onSubmit(panel.querySelector('form'), async (form) => {
        const email = form.elements.namedItem('email').value.trim()
        try {
          await api('POST', '/v1/invitations', { email, role: form.elements.namedItem('role').value })
          form.reset()
          showMessage('Invitation sent to ' + email + '.')
          await loadInvitations()
        } catch (error) {
          if (error.code === 'CONFLICT') showMessage(email + ' already has an account here.')
          else handle(error)
        }
      })
    }
    loadInvitations().catch(handle)
  }

  async function loadInvitations () {
    const list = $('invite-slot').querySelector('.invitations')
    if (!list) return
    const page = await api('GET', '/v1/invitations?limit=100')
    list.replaceChildren(...page.data.map((invitation) => {
      const li = document.createElement('li')
      li.className = 'invitation'
      const label = document.createElement('span')
      label.textContent = invitation.email + ' (' + invitation.role + ', pending)'
      const revoke = revokeButton('Revoke the invitation of ' + invitation.email, () => {
        api('DELETE', '/v1/invitations/' + encodeURIComponent(invitation.id))
          .then(() => { li.remove(); showMessage('Invitation of ' + invitation.email + ' revoked.') })
          .catch(handle)
      })
      li.append(label, ' ', revoke)
      return li
    }))
  }
  // ---- end of People ----

  function start () {
    const onLinkScreen = startPeople()
    $('signin-form').addEventListener('submit', async (event) => {
      event.preventDefault()
      const form = event.currentTarget
      const email = form.elements.namedItem('email').value.trim()
      const password = form.elements.namedItem('password').value
      const button = form.querySelector('button')
      button.disabled = true
      try {
        const res = await send('POST', '/v1/auth/login', { email, password })
        if (!res.ok) throw await failure(res)
        form.reset()
        showMessage(null)
        await load()
      } catch (error) {
        showMessage(describe(error))
      } finally {
        button.disabled = false
      }
    })

    $('project-form').addEventListener('submit', (event) => {
      event.preventDefault()
      const form = event.currentTarget
      const name = form.elements.namedItem('name').value.trim()
      if (!name) return
      api('POST', '/v1/projects', { name }).then((project) => {
        $('projects').prepend(projectItem(project, []))
        $('empty').hidden = true
        form.reset()
        showMessage(null)
      }).catch(handle)
    })

    $('api-key-form').addEventListener('submit', (event) => {
      event.preventDefault()
      const form = event.currentTarget
      const name = form.elements.namedItem('name').value.trim()
      const scopes = [...form.querySelectorAll('input[name="scope"]:checked')].map((box) => box.value)
      if (!name) return
      if (!scopes.length) return showMessage('Choose at least one scope.')
      api('POST', '/v1/api-keys', { name, scopes }).then((created) => {
        form.elements.namedItem('name').value = ''
        showNewKey(created.key)
        showMessage(null)
        return loadKeys()
      }).catch(handle)
    })
    $('copy-key').addEventListener('click', () => {
      const key = $('new-key-value').textContent
      navigator.clipboard.writeText(key).then(
        () => { $('copy-key').textContent = 'Copied' },
        () => { window.getSelection().selectAllChildren($('new-key-value')); $('copy-key').textContent = 'Press Ctrl+C to copy' }
      )
    })
    $('dismiss-key').addEventListener('click', () => showNewKey(null))
    $('activity-refresh').addEventListener('click', () => { loadActivity().catch(handle) })

    $('sign-out').addEventListener('click', async () => {
      try {
        await api('POST', '/v1/auth/logout')
      } catch { /* signed out either way */ }
      showSignIn(null)
    })

    if (onLinkScreen) return // a reset or invitation link: its screen, not the board
    const hadSession = csrfToken() !== null
    load().catch((error) => {
      if (error.code === 'SESSION_EXPIRED') showSignIn(hadSession ? describe(error) : null)
      else handle(error)
    })
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start)
  else start()
})()
