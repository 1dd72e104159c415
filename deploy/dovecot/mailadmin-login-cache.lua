-- mailadmin's login check for Dovecot (a Lua passdb; Debian's dovecot-auth-lua).
--
-- Why a Lua passdb at all: Dovecot's auth cache keeps what a passdb answered.
-- The SQL passdb answers with the stored bcrypt hash, so every cached login
-- still runs bcrypt (about 290 ms at cost 12). A passdb that checks the
-- password itself and returns none is cached differently: Dovecot keeps a
-- SHA1 of the password it accepted, so a mail client's repeated login is a
-- SHA1 from the cache, not a bcrypt run. This script is that passdb; the SQL
-- passdb in front of it only looks the mailbox up (noauthenticate), so a
-- disabled or deleted mailbox is refused there on every login, cache or not.
--
-- The cache's rules are Dovecot's: a changed password needs the panel's
-- `doveadm auth cache flush` (it does it on every change) for the old one to
-- stop working; a new password works at once, because a failed match against
-- the cache sends Dovecot back to the database. A wrong password is never
-- answered from the cache: it runs bcrypt, so guessing stays as slow as ever.
--
-- The stored hash arrives as a userdb_ field, which Dovecot keeps inside the
-- auth process (it is not sent to the login process); the rendered userdb
-- removes it before the mail process could see it. Nothing is logged.
--
-- The root helper installs a configuration naming a Lua file only when the
-- file and every directory above it are root's and writable by nobody else.

function script_init()
  return 0
end

local function matches(req, stored, password)
  if stored == nil or stored == "" then
    return false
  end
  if stored:sub(1, 1) ~= "{" then
    -- A bare crypt string: the SQL passdb's default_pass_scheme.
    stored = "{BLF-CRYPT}" .. stored
  end
  return req:password_verify(stored, password) == 1
end

-- Two hashes may have been handed over: the mailbox's own (none when its
-- domain requires app passwords for mail programs) and, when the typed
-- password's salted hash is a live app password's lookup, allowed for this
-- service, that app password's. Either one signs in. The cache key holds
-- both, so a revoked app password (no row, no hash) never matches an entry
-- made while it was live.
function auth_password_verify(req, password)
  local stored = req:var_expand("%{userdb:mailadmin_stored}")
  local app = req:var_expand("%{userdb:mailadmin_app_stored}")
  if (stored == nil or stored == "") and (app == nil or app == "") then
    return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, {}
  end
  if matches(req, app, password) or matches(req, stored, password) then
    return dovecot.auth.PASSDB_RESULT_OK, {}
  end
  return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, {}
end
