/*
 * The relay's stop: deliveries in flight finish first (relay/drain.c).
 */
#ifndef SMTPD_DRAIN_H
#define SMTPD_DRAIN_H

void	relay_drain(unsigned int seconds);

#endif
