-- A milestone is notified once per threshold, ever. The evaluation already skips thresholds notified before, but two
-- runs whose `now` falls on different days (one just before midnight in the organisation's zone, one just after)
-- would each claim the same threshold under a different date and cooldown window. This index makes the claim's
-- `on conflict do nothing` refuse the second, whatever the runs' timing.
create unique index if not exists scenario_notifications_milestone_threshold_key
  on public.scenario_notifications (user_id, (payload ->> 'threshold'))
  where scenario_type = 'milestone';
