DROP TABLE feed_consumers;
DROP TABLE change_events;
DROP FUNCTION change_events_number();
DROP TABLE change_event_heads;
