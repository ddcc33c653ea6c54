-- A period ends on or after the day it starts (issue 22), checked by the database whoever
-- writes it. SQLite cannot add a CHECK to an existing table, so two triggers refuse such a
-- row (dates are ISO text, which compares as the dates do).
CREATE TRIGGER periods_dates_ordered_insert BEFORE INSERT ON periods
    WHEN NEW.ends_on < NEW.starts_on
BEGIN
    SELECT RAISE(ABORT, 'a period cannot end before it starts');
END;
CREATE TRIGGER periods_dates_ordered_update BEFORE UPDATE OF starts_on, ends_on ON periods
    WHEN NEW.ends_on < NEW.starts_on
BEGIN
    SELECT RAISE(ABORT, 'a period cannot end before it starts');
END;
