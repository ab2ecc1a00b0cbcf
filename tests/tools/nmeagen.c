/* nmeagen: writes a synthetic but realistic NMEA 0183 log of an ambulance
 * drive through Bangkok, for gpsfake (tests, make demo).
 *
 *   nmeagen [--seed N] [--seconds N] [--skip N] [--start EPOCH|now] [--hostile]
 *
 * The drive: from Victory Monument south down Phaya Thai Road to the
 * Pathum Wan intersection, left onto Rama I past Siam and Ratchaprasong,
 * along Phloen Chit, under the expressway at Nana (no fix for a while),
 * then Sukhumvit Road towards Ekkamai. Speeds 0-60 km/h with stops at the
 * lights, a few metres of correlated noise, occasional 2D fixes. One fix a
 * second: GGA, GSA, RMC with correct checksums. The same arguments always
 * give the same bytes (the default start is a fixed date).
 *
 * --skip N starts N seconds into the same drive (timestamps continue), so a
 * second gpsfake can resume where a killed one stopped. --hostile mixes in
 * garbage lines, bad checksums, absurd coordinates, time jumps and a
 * flapping fix, each in otherwise well-formed sentences. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEG       (M_PI / 180.0)
#define EARTH_R_M 6371008.8

struct wp {
	double lat, lon;
	int light; /* a traffic light at this waypoint */
	const char *name;
};

/* Plausible coordinates along the roads (WGS84). */
static const struct wp route[] = {
    {13.76490, 100.53830, 0, "Victory Monument"},
    {13.76270, 100.53720, 0, "Phaya Thai Rd"},
    {13.75800, 100.53490, 1, "Phaya Thai intersection"},
    {13.75420, 100.53360, 0, "Phaya Thai Rd"},
    {13.75150, 100.53170, 1, "Ratchathewi intersection"},
    {13.74900, 100.53080, 0, "Phaya Thai Rd"},
    {13.74660, 100.52930, 1, "Pathum Wan intersection"},
    {13.74590, 100.53140, 0, "Rama I Rd"},
    {13.74560, 100.53410, 0, "Siam"},
    {13.74470, 100.53770, 0, "Rama I Rd"},
    {13.74410, 100.54040, 1, "Ratchaprasong"},
    {13.74340, 100.54500, 0, "Phloen Chit Rd"},
    {13.74310, 100.54900, 1, "Phloen Chit"},
    {13.74180, 100.55170, 0, "Nana underpass entry"},
    {13.74050, 100.55300, 0, "Nana underpass exit"},
    {13.73700, 100.56030, 1, "Asok"},
    {13.73460, 100.56480, 0, "Sukhumvit Rd"},
    {13.73050, 100.56970, 1, "Phrom Phong"},
    {13.72420, 100.57850, 1, "Thong Lo"},
    {13.71950, 100.58520, 1, "Ekkamai"},
};
#define NWP          (sizeof(route) / sizeof(route[0]))
#define TUNNEL_FROM  13 /* index of the waypoints bounding the gap */
#define TUNNEL_UNTIL 14

/* xorshift64*: deterministic for a seed, on every platform. */
static uint64_t rng_state;
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(2685821657736338717);
}
static double urand(void) /* [0, 1) */
{
	return (double)(rng() >> 11) / 9007199254740992.0;
}
static double nrand(void) /* standard normal, Box-Muller */
{
	double u = urand(), v = urand();
	if (u < 1e-12)
		u = 1e-12;
	return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

static double dist_m(double la1, double lo1, double la2, double lo2)
{
	double dla = (la2 - la1) * DEG, dlo = (lo2 - lo1) * DEG;
	double a = sin(dla / 2) * sin(dla / 2) +
	           cos(la1 * DEG) * cos(la2 * DEG) * sin(dlo / 2) * sin(dlo / 2);
	return 2 * EARTH_R_M * asin(sqrt(a));
}

static double bearing_deg(double la1, double lo1, double la2, double lo2)
{
	double y = sin((lo2 - lo1) * DEG) * cos(la2 * DEG);
	double x = cos(la1 * DEG) * sin(la2 * DEG) -
	           sin(la1 * DEG) * cos(la2 * DEG) * cos((lo2 - lo1) * DEG);
	double b = atan2(y, x) / DEG;
	return b < 0 ? b + 360 : b;
}

static void emit(const char *body)
{
	unsigned cs = 0;
	for (const char *p = body; *p; p++)
		cs ^= (unsigned char)*p;
	printf("$%s*%02X\r\n", body, cs);
}

static void fmt_lat(char *buf, size_t cap, double lat)
{
	double a = fabs(lat);
	int d = (int)a;
	snprintf(buf, cap, "%02d%07.4f,%c", d, (a - d) * 60.0, lat < 0 ? 'S' : 'N');
}

static void fmt_lon(char *buf, size_t cap, double lon)
{
	double a = fabs(lon);
	int d = (int)a;
	snprintf(buf, cap, "%03d%07.4f,%c", d, (a - d) * 60.0, lon < 0 ? 'W' : 'E');
}

struct sample {
	time_t t;
	double lat, lon, speed_ms, track;
	int fix;  /* 0 none, 2 or 3 */
	int sats; /* used */
	double hdop;
	int bad_checksum;
};

static void write_sample(const struct sample *s)
{
	struct tm tm;
	gmtime_r(&s->t, &tm);
	char hms[32], dmy[32], la[40], lo[40], b[256];
	snprintf(hms, sizeof(hms), "%02d%02d%02d.00", tm.tm_hour, tm.tm_min, tm.tm_sec);
	snprintf(dmy, sizeof(dmy), "%02d%02d%02d", tm.tm_mday, tm.tm_mon + 1, tm.tm_year % 100);
	fmt_lat(la, sizeof(la), s->lat);
	fmt_lon(lo, sizeof(lo), s->lon);
	if (s->fix == 0) {
		snprintf(b, sizeof(b), "GPGGA,%s,,,,,0,%02d,99.9,,M,,M,,", hms, s->sats);
		emit(b);
		emit("GPGSA,A,1,,,,,,,,,,,,,99.9,99.9,99.9");
		snprintf(b, sizeof(b), "GPRMC,%s,V,,,,,,,%s,,,N", hms, dmy);
		emit(b);
		return;
	}
	if (s->fix == 3)
		snprintf(b, sizeof(b), "GPGGA,%s,%s,%s,1,%02d,%.1f,%.1f,M,-27.8,M,,", hms, la, lo,
		         s->sats, s->hdop, 4.0 + 0.5 * (s->lat - 13.7));
	else
		snprintf(b, sizeof(b), "GPGGA,%s,%s,%s,1,%02d,%.1f,,M,,M,,", hms, la, lo, s->sats,
		         s->hdop);
	emit(b);
	static const int prn[] = {2, 5, 6, 12, 13, 15, 19, 24, 25, 29, 30, 32};
	char sv[64] = "";
	for (int i = 0; i < 12; i++) {
		char one[8];
		if (i < s->sats)
			snprintf(one, sizeof(one), "%02d,", prn[i]);
		else
			snprintf(one, sizeof(one), ",");
		strncat(sv, one, sizeof(sv) - strlen(sv) - 1);
	}
	snprintf(b, sizeof(b), "GPGSA,A,%d,%s%.1f,%.1f,%.1f", s->fix, sv, s->hdop * 1.6, s->hdop,
	         s->hdop * 1.3);
	emit(b);
	snprintf(b, sizeof(b), "GPRMC,%s,A,%s,%s,%.1f,%.1f,%s,0.9,W,A", hms, la, lo,
	         s->speed_ms / 0.514444, s->track, dmy);
	if (s->bad_checksum) {
		printf("$%s*00\r\n", b); /* gpsd must drop it */
		return;
	}
	emit(b);
}

/* Hostile additions, decided per second from the same generator. */
static void hostile(struct sample *s, long i)
{
	switch (i % 23) {
	case 3:
		printf("this is not NMEA at all\r\n");
		printf("$GPGGA,garbage,,,*ZZ\r\n");
		break;
	case 6: /* absurd coordinates with a valid checksum */
		s->lat = 91.5;
		s->lon = 200.0;
		break;
	case 9: /* a time jump: five years ahead, then back */
		s->t += 5L * 365 * 86400;
		break;
	case 11:
		s->t -= 20L * 365 * 86400; /* a receiver's week-rollover date */
		break;
	case 13:
	case 15:
	case 17: /* a flapping fix */
		s->fix = 0;
		break;
	case 19:
		s->bad_checksum = 1;
		s->lat += 0.5; /* would be a 55 km jump */
		break;
	case 21: { /* 2 kB without a newline */
		for (int k = 0; k < 2048; k++)
			putchar('A' + (int)(rng() % 26));
		printf("\r\n");
		break;
	}
	default:
		break;
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: nmeagen [--seed N] [--seconds N] [--skip N] [--start EPOCH|now] "
	                "[--hostile]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	unsigned long long seed = 1;
	long seconds = 600, skip = 0;
	time_t start = 1718325000; /* 2024-06-14 00:30:00 UTC, 07:30 in Bangkok */
	int hostile_mode = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--hostile")) {
			hostile_mode = 1;
			continue;
		}
		if (!v)
			usage();
		i++;
		char *end;
		if (!strcmp(a, "--seed"))
			seed = strtoull(v, &end, 10);
		else if (!strcmp(a, "--seconds"))
			seconds = strtol(v, &end, 10);
		else if (!strcmp(a, "--skip"))
			skip = strtol(v, &end, 10);
		else if (!strcmp(a, "--start")) {
			if (!strcmp(v, "now")) {
				start = time(NULL);
				end = (char *)"";
			} else
				start = (time_t)strtoll(v, &end, 10);
		} else
			usage();
		if (*end || seconds < 0 || skip < 0)
			usage();
	}
	rng_state = seed * UINT64_C(0x9E3779B97F4A7C15) + 0x1234567;
	if (!rng_state)
		rng_state = 1;

	/* Cumulative distance along the route. */
	double cum[NWP];
	cum[0] = 0;
	for (size_t i = 1; i < NWP; i++)
		cum[i] = cum[i - 1] +
		         dist_m(route[i - 1].lat, route[i - 1].lon, route[i].lat, route[i].lon);
	/* Red time at each light, drawn once: 0 (green) or 10-40 s. */
	int red[NWP];
	for (size_t i = 0; i < NWP; i++)
		red[i] = route[i].light && urand() < 0.6 ? 10 + (int)(urand() * 30) : 0;

	struct tm st;
	gmtime_r(&start, &st);
	printf("# Name: Bangkok drive, Victory Monument - Phaya Thai - Siam - Sukhumvit\n"
	       "# Chipset: u-blox NEO-M8N (NMEA 0183 4.0, GP talker), 1 Hz\n"
	       "# Date: %04d-%02d-%02d (synthetic: generated by nmeagen, seed %llu%s)\n"
	       "# Location: Bangkok, Thailand, ambulance roof antenna\n"
	       "# Notes: stops at lights, underpass at Nana without a fix, occasional 2D\n",
	       st.tm_year + 1900, st.tm_mon + 1, st.tm_mday, seed, hostile_mode ? ", hostile" : "");

	double s = 0, v = 0, cruise = 13.0;
	double nlat = 0, nlon = 0; /* correlated noise, metres */
	size_t stop_at = 1;        /* next waypoint where a red light may stop us */
	int waiting = 0, parked = 0, start_wait = 8;
	int twod = 0;
	double track = bearing_deg(route[0].lat, route[0].lon, route[1].lat, route[1].lon);
	for (long i = 0; i < skip + seconds; i++) {
		/* kinematics, one second */
		if (start_wait > 0) {
			start_wait--;
		} else if (waiting > 0) {
			waiting--;
		} else if (!parked) {
			while (stop_at < NWP && !red[stop_at])
				stop_at++;
			double to_stop = stop_at < NWP ? cum[stop_at] - s : cum[NWP - 1] - s;
			double vmax = sqrt(2.0 * 2.0 * fmax(to_stop - 2.0, 0));
			double target = fmin(cruise, vmax);
			if (v < target)
				v = fmin(target, v + 1.5);
			else
				v = fmax(target, v - 2.5);
			s += v;
			if (to_stop - v < 3.0 && v < 3.0) {
				if (stop_at < NWP) {
					s = cum[stop_at];
					waiting = red[stop_at];
					stop_at++;
				} else {
					s = cum[NWP - 1];
					parked = 1;
				}
				v = 0;
			}
			if (urand() < 0.05)
				cruise = 8.0 + urand() * 8.6; /* up to 60 km/h */
		}
		/* position on the polyline */
		size_t seg = 0;
		while (seg + 2 < NWP && cum[seg + 1] <= s)
			seg++;
		const struct wp *a = &route[seg], *b = &route[seg + 1];
		double len = cum[seg + 1] - cum[seg];
		double f = len > 0 ? fmin(1.0, (s - cum[seg]) / len) : 0;
		double lat = a->lat + (b->lat - a->lat) * f;
		double lon = a->lon + (b->lon - a->lon) * f;
		if (v > 0.5) {
			double want = bearing_deg(a->lat, a->lon, b->lat, b->lon);
			double d = fmod(want - track + 540.0, 360.0) - 180.0;
			track = fmod(track + (fabs(d) > 45 ? d * 0.6 : d) + 360.0, 360.0);
		}
		nlat = 0.8 * nlat + 1.2 * nrand();
		nlon = 0.8 * nlon + 1.2 * nrand();

		struct sample sm = {0};
		sm.t = start + (time_t)i;
		sm.lat = lat + nlat / 111320.0;
		sm.lon = lon + nlon / (111320.0 * cos(lat * DEG));
		sm.speed_ms = v > 0.3 ? v + 0.2 * nrand() : 0.05 * urand();
		if (sm.speed_ms < 0)
			sm.speed_ms = 0;
		sm.track = track;
		sm.fix = 3;
		sm.sats = 8 + (int)(urand() * 4);
		sm.hdop = 0.8 + urand() * 0.6;
		if (twod > 0) {
			twod--;
			sm.fix = 2;
			sm.sats = 3;
			sm.hdop = 2.5 + urand();
		} else if (urand() < 0.01) {
			twod = 3 + (int)(urand() * 4);
		}
		if (seg == TUNNEL_FROM && s > cum[TUNNEL_FROM] + 20 && s < cum[TUNNEL_UNTIL]) {
			sm.fix = 0; /* under the expressway */
			sm.sats = 0;
		}
		if (hostile_mode)
			hostile(&sm, i);
		if (i >= skip)
			write_sample(&sm);
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
