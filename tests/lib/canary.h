/* Personal data and secrets the tests put through the programs, made
 * distinctive so that tests/log_canary_scan.py finds any of them in any log
 * written during the suite (make check runs the scan last). The scan reads
 * this file: every CANARY_* string literal below is searched for as is;
 * for the coordinates also their 5-decimal and 1e-7 integer forms. Keep
 * one #define per line. */
#ifndef ESS_TESTS_CANARY_H
#define ESS_TESTS_CANARY_H

#define CANARY_SUMMARY "CANARY-SUMMARY child locked in"
#define CANARY_NAME    "Canary Nokkamin Jaidee"
#define CANARY_PHONE   "+66815550199"
#define CANARY_THAI    "นกขมิ้นนำทาง"
#define CANARY_ADDRESS "ซอยนกขมิ้น 7"
#define CANARY_NOTE    "CANARY-NOTE gate code 7351"
#define CANARY_LAT     "18.7883451"
#define CANARY_LON     "98.9853123"
#define CANARY_TOKEN   "canary-enroll-token-5c1e"
/* the store's fault tests (test_store_faults.c) and the demo use these */
#define CANARY_STORE_NAME  "Somchai Jaidee"
#define CANARY_STORE_PHONE "081-234-5678"
#define CANARY_STORE_THAI  "สมชาย ใจดี"

#endif
