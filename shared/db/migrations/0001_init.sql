-- sip-dialer schema, version 1.
-- Postgres is the source of truth of every job's state; see shared/job_states.py for the machine.

CREATE TABLE trunks (
    name              text PRIMARY KEY,
    registrar         text NOT NULL,
    transport         text NOT NULL DEFAULT 'udp' CHECK (transport IN ('udp', 'tcp', 'tls')),
    username          text NOT NULL,            -- never the password: that lives in env or a secret file
    realm             text,
    domain            text,
    variant_order     text[] NOT NULL DEFAULT ARRAY['national', 'cc', 'e164'],
    max_concurrent    integer NOT NULL DEFAULT 8 CHECK (max_concurrent > 0),
    max_cps           real NOT NULL DEFAULT 10 CHECK (max_cps > 0),
    healthy           boolean NOT NULL DEFAULT true,
    unhealthy_reason  text,
    unhealthy_since   timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE campaigns (
    id                 bigserial PRIMARY KEY,
    name               text NOT NULL UNIQUE,
    trunk              text NOT NULL,
    state              text NOT NULL DEFAULT 'draft'
                       CHECK (state IN ('draft', 'running', 'paused', 'cancelled', 'finished')),
    region             text NOT NULL DEFAULT 'CN',
    tz                 text NOT NULL DEFAULT 'Asia/Shanghai',
    windows            text NOT NULL DEFAULT '',          -- '09:00-12:00,14:00-20:00'; empty = all day
    days               text NOT NULL DEFAULT 'mon-sun',
    start_at           timestamptz,
    end_at             timestamptz,
    recur_cron         text,                               -- re-opens remaining jobs, e.g. '0 10 * * mon-fri'
    max_attempts       integer NOT NULL DEFAULT 3 CHECK (max_attempts > 0),
    retry_delays       jsonb NOT NULL DEFAULT '{}'::jsonb, -- outcome -> seconds
    max_concurrent     integer NOT NULL DEFAULT 10 CHECK (max_concurrent > 0),
    cps                real NOT NULL DEFAULT 5 CHECK (cps > 0),
    ring_timeout_s     real NOT NULL DEFAULT 45 CHECK (ring_timeout_s > 0),
    hold_s             real NOT NULL DEFAULT 0 CHECK (hold_s >= 0),
    allowed_regions    text[] NOT NULL DEFAULT '{}',       -- empty = the campaign's own region
    allowed_types      text[] NOT NULL DEFAULT ARRAY['mobile', 'fixed_line', 'fixed_line_or_mobile'],
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE uploads (
    id             bigserial PRIMARY KEY,
    campaign_id    bigint NOT NULL REFERENCES campaigns (id),
    filename       text NOT NULL,
    sha256         text NOT NULL,
    rows           integer NOT NULL DEFAULT 0,
    accepted       integer NOT NULL DEFAULT 0,
    duplicates     integer NOT NULL DEFAULT 0,
    dnc            integer NOT NULL DEFAULT 0,
    rejected       integer NOT NULL DEFAULT 0,
    error_report   text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);
CREATE INDEX uploads_campaign ON uploads (campaign_id);

CREATE TABLE upload_rejects (
    upload_id   bigint NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    row_number  integer NOT NULL,
    field       text NOT NULL,
    raw_value   text NOT NULL,
    reason      text NOT NULL,
    PRIMARY KEY (upload_id, row_number, field)
);

CREATE TABLE dnc (
    e164      text PRIMARY KEY,
    reason    text,
    added_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dial_jobs (
    id               bigserial PRIMARY KEY,
    campaign_id      bigint NOT NULL REFERENCES campaigns (id),
    e164             text NOT NULL,
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
    upload_id        bigint REFERENCES uploads (id),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'queued', 'dialing', 'completed', 'failed',
                                       'retry_wait', 'cancelled', 'skipped_dnc')),
    outcome          text,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    due_at           timestamptz,        -- when the current attempt became due (dispatch lag)
    queued_at        timestamptz,
    lease_until      timestamptz,
    worker           text,
    last_status      integer,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, e164)
);
-- The dispatcher's due-job scan: only rows that can be due are indexed.
CREATE INDEX dial_jobs_due ON dial_jobs (next_attempt_at) WHERE status IN ('pending', 'retry_wait');
-- The reaper's two scans.
CREATE INDEX dial_jobs_leases ON dial_jobs (lease_until) WHERE status = 'dialing';
CREATE INDEX dial_jobs_queued ON dial_jobs (queued_at) WHERE status = 'queued';
-- Campaign status and progress reports.
CREATE INDEX dial_jobs_campaign_status ON dial_jobs (campaign_id, status);
CREATE INDEX dial_jobs_e164 ON dial_jobs (e164);

CREATE TABLE call_attempts (
    id                     bigserial PRIMARY KEY,
    job_id                 bigint NOT NULL REFERENCES dial_jobs (id),
    campaign_id            bigint NOT NULL REFERENCES campaigns (id),
    attempt                integer NOT NULL,     -- the job's attempt number (1, 2, ...)
    try_index              integer NOT NULL,     -- variant try within the attempt (0, 1, ...)
    trunk                  text NOT NULL,
    variant                text,
    dialled_uri            text,
    sip_call_id            text,
    status_code            integer,
    reason                 text,
    provisional            jsonb NOT NULL DEFAULT '[]'::jsonb,   -- [{"code": 180, "at": "..."}]
    invite_at              timestamptz,
    first_provisional_at   timestamptz,
    answer_at              timestamptz,
    end_at                 timestamptz,
    duration_s             real,                 -- talk time, answer to hang-up
    hangup_by              text,
    outcome                text NOT NULL,
    worker                 text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, attempt, try_index)
);
CREATE INDEX call_attempts_job ON call_attempts (job_id);
CREATE INDEX call_attempts_campaign_outcome ON call_attempts (campaign_id, outcome);
CREATE INDEX call_attempts_invite ON call_attempts (invite_at);
