"""feedback-intake: ratings and feedback from every channel, classified and routed to units."""
