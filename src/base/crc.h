/*
 * crc: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum
 * of every reel file format and log frame.
 *
 * reel_crc32c() uses the SSE4.2 instruction when the CPU has it (chosen at
 * run time) and reel_crc32c_sw() otherwise; the two agree bit for bit
 * (tests/unit/test_base.c). Both take the running CRC so data can be fed in
 * pieces: crc = reel_crc32c(crc, p, n) starting from 0. Thread rules: any.
 */
#ifndef REEL_BASE_CRC_H
#define REEL_BASE_CRC_H

#include <stddef.h>
#include <stdint.h>

uint32_t reel_crc32c(uint32_t crc, const void *data, size_t len);
uint32_t reel_crc32c_sw(uint32_t crc, const void *data, size_t len);

#endif
