ALTER TABLE periods DROP CONSTRAINT IF EXISTS periods_dates_ordered;
