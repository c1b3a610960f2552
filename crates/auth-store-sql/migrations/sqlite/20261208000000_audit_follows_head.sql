-- Each audit entry must follow the chain's head, and moves it, within the
-- INSERT that adds it: a store that knows the head appends in one statement
-- without first locking the chain row, and an entry chained on a head that
-- another connection has moved since is refused with the whole statement.
CREATE TRIGGER auth_audit_follows_head BEFORE INSERT ON auth_audit
BEGIN
    SELECT RAISE(ABORT, 'auth_audit: an entry must follow the chain head')
    WHERE NOT EXISTS (
        SELECT 1 FROM auth_audit_chain
        WHERE id = 1 AND head_seq + 1 = NEW.seq AND head_hash = NEW.prev_hash
    );
    UPDATE auth_audit_chain SET head_seq = NEW.seq, head_hash = NEW.hash WHERE id = 1;
END;
