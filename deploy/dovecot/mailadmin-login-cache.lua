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
-- removes it before the mail process could see it. Nothing is logged, but a
-- usage file that cannot be opened (a warning, without the password).
--
-- App-password usage: a login accepted with an app password's hash (not the
-- main one) appends one line, "ID IP SERVICE UNIXTIME", to
-- DIR/app-password-usage, DIR handed over like the hashes (the rendered
-- app-password passdb's default_fields, which the root helper checks against
-- its own app_usage_dir). The panel takes the file through the root helper
-- (`app-usage take`) and keeps the newest line per app password. A login
-- answered from the auth cache never runs this script, so the figure is
-- precise to within auth_cache_ttl. Dovecot's auth worker makes the file 0600
-- (its umask), its own user's: IP addresses are personal data.
--
-- The directory is data the panel's side renders (the SQL file could hand over
-- another one), so this script trusts none of it: it writes only to the fixed
-- file name, only lines it formatted from checked values, and never as root.
--
-- The root helper installs a configuration naming a Lua file only when the
-- file and every directory above it are root's and writable by nobody else.

function script_init()
  return 0
end

local USAGE_FILE = "app-password-usage"
-- Past this size the file is not written to: with the panel's sync stopped for
-- long (the agent down), what is not yet taken stays bounded. The sync takes at
-- most 4 MiB at a time; a line is under 80 bytes.
local USAGE_FILE_LIMIT = 64 * 1024 * 1024
-- Dovecot's %s for the services an app password may be allowed for.
local USAGE_SERVICES = { imap = true, smtp = true, submission = true, sieve = true }
local not_root = nil

-- Whether this process runs as a user other than root (real, effective, saved
-- and filesystem uid all non-zero). Unknown counts as root: write nothing.
local function runs_unprivileged()
  if not_root == nil then
    not_root = false
    local status = io.open("/proc/self/status", "r")
    if status ~= nil then
      local text = status:read("*a") or ""
      status:close()
      local ids = text:match("\nUid:([^\n]*)")
      if ids ~= nil and ids:match("%d") then
        not_root = true
        for id in ids:gmatch("%d+") do
          if tonumber(id) == 0 then
            not_root = false
          end
        end
      end
    end
  end
  return not_root
end

local function record_app_password_use(req)
  local id = req:var_expand("%{userdb:mailadmin_app_id}")
  local dir = req:var_expand("%{userdb:mailadmin_app_usage}")
  local ip = req:var_expand("%{rip}")
  local service = req:var_expand("%s")
  if ip == "" then
    ip = "-"  -- no remote address (doveadm auth test)
  end
  if not id:match("^%d+$") or #id > 18 or not dir:match("^/[%w/._-]*$")
      or dir:find("..", 1, true) or #dir > 200 or not ip:match("^[%x:.-]+$") or #ip > 45
      or not USAGE_SERVICES[service] or not runs_unprivileged() then
    return
  end
  local file, problem = io.open(dir .. "/" .. USAGE_FILE, "a")
  if file == nil then
    req:log_warning("app-password usage not recorded: " .. tostring(problem))
    return
  end
  local size = file:seek("end")
  if size == nil or size > USAGE_FILE_LIMIT then
    file:close()
    req:log_warning("app-password usage not recorded: the file is full (the sync is not running)")
    return
  end
  -- One short line, one write(2) at close, O_APPEND: concurrent auth workers'
  -- lines never interleave.
  file:write(string.format("%s %s %s %d\n", id, ip, service, os.time()))
  file:close()
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
  if matches(req, app, password) then
    record_app_password_use(req)
    return dovecot.auth.PASSDB_RESULT_OK, {}
  end
  if matches(req, stored, password) then
    return dovecot.auth.PASSDB_RESULT_OK, {}
  end
  return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, {}
end
