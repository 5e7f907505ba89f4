-- Call flows (issue 11): what an answered call does, the prompts it plays, and what happened.

-- The campaign's flow (shared/flow Flow.to_json()); NULL = hang up on answer after hold_s, as before.
ALTER TABLE campaigns ADD COLUMN flow jsonb;
-- Set when a worker could not run the campaign's flow (a prompt it could not get); cleared by an operator.
ALTER TABLE campaigns ADD COLUMN flagged_reason text;
ALTER TABLE campaigns ADD COLUMN flagged_at timestamptz;

-- Prompt audio by content hash: uploaded WAVs at campaign creation, rendered `say` texts when first needed.
-- Workers on other hosts fetch from here into their local cache; no shared filesystem.
CREATE TABLE prompts (
    sha256      text PRIMARY KEY,                     -- of the WAV bytes (play) or of voice + text (say)
    kind        text NOT NULL CHECK (kind IN ('wav', 'say')),
    voice       text,
    text        text,                                 -- the rendered text of a say prompt
    audio       bytea NOT NULL,                       -- a mono 8/16 kHz 16-bit PCM WAV file
    duration_s  real NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The CDR of an answered call: the flow log and its facts.
ALTER TABLE call_attempts ADD COLUMN flow_steps jsonb;            -- [{"step", "action", "result", "at_s", ...}]
ALTER TABLE call_attempts ADD COLUMN digits text;                 -- every digit gathered, in order
ALTER TABLE call_attempts ADD COLUMN transfer_target text;
ALTER TABLE call_attempts ADD COLUMN transfer_status integer;     -- final NOTIFY sipfrag / bridged leg code
ALTER TABLE call_attempts ADD COLUMN recording text;              -- path or URL of the recording
ALTER TABLE call_attempts ADD COLUMN first_audio_s real;          -- 200 OK to the first RTP packet of audio sent
