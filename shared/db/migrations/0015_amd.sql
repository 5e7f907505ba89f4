-- Answering-machine detection (issue 15): the amd step's verdict on each answered attempt.
-- The flow log (flow_steps) has the whole amd entry; these columns make the verdict queryable and indexable
-- (e.g. "how many machines per campaign", "humans decided later than 3 s").
ALTER TABLE call_attempts ADD COLUMN amd_decision text
    CHECK (amd_decision IS NULL OR amd_decision IN ('human', 'machine', 'notsure'));
ALTER TABLE call_attempts ADD COLUMN amd_reason text;           -- shared.amd Reason, or timeout / no_audio
ALTER TABLE call_attempts ADD COLUMN amd_decided_at_s real;     -- seconds from 200 OK to the deciding audio
