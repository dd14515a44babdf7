//! Tests of the segment format and of the torn-batch rule.

use super::*;
use crate::server::storage::Storage;
use crate::server::storage::sim::{SimDisk, SimStorage};

/// Segment bytes: header, then one batch per slice of payloads.
fn segment(batches: &[&[&[u8]]]) -> (Vec<u8>, Vec<u64>) {
    let mut bytes = encode_segment_header(1, &Position::genesis());
    let mut chain = genesis_chain();
    let mut lsn = 0;
    let mut offsets = Vec::new();
    for batch in batches {
        let mut body = Vec::new();
        for payload in *batch {
            chain = encode_record(&chain, payload, &mut body);
        }
        offsets.push(bytes.len() as u64);
        encode_batch(lsn + 1, u32::try_from(batch.len()).unwrap(), &body, &mut bytes);
        lsn += batch.len() as u64;
    }
    (bytes, offsets)
}

/// A scan and the records (position, payload) it handed over.
type Scanned = Result<(SegmentScan, Vec<(u64, Vec<u8>)>), JournalError>;

fn scan_bytes(bytes: &[u8], newest: bool) -> Scanned {
    let storage = SimStorage(SimDisk::new());
    let file = storage.create("s").unwrap();
    file.write_all_at(bytes, 0).unwrap();
    let mut seen = Vec::new();
    let scan = scan_segment(file.as_ref(), "s", Position::genesis(), newest, |lsn, payload| {
        seen.push((lsn, payload.to_vec()));
        Ok(())
    })?;
    Ok((scan, seen))
}

fn corrupt_offset(result: Scanned) -> u64 {
    match result {
        Err(JournalError::Corrupt { offset, .. }) => offset,
        other => panic!("expected damage, got {other:?}"),
    }
}

/// A payload long enough that a batch of three spans several sectors.
fn long(byte: u8) -> Vec<u8> {
    vec![byte; 300]
}

#[test]
fn reads_every_record_in_order_with_its_position_and_ignores_the_zeros_after() {
    let (mut bytes, offsets) = segment(&[&[b"one", b"two"], &[b"three"]]);
    let end = bytes.len() as u64;
    bytes.resize(bytes.len() + 8192, 0);
    let (scan, seen) = scan_bytes(&bytes, true).unwrap();
    let payloads: Vec<_> = seen.iter().map(|(lsn, p)| (*lsn, p.as_slice())).collect();
    assert_eq!(payloads, [(1, &b"one"[..]), (2, &b"two"[..]), (3, &b"three"[..])]);
    assert_eq!(offsets, [512, 1024]);
    assert_eq!(scan.end_offset, end);
    assert_eq!(scan.batches, 2);
    assert_eq!(scan.end.lsn, 3);
    assert_eq!(scan.torn_at, None);
}

#[test]
fn a_known_segment_has_known_bytes_and_head_so_the_format_cannot_change_unnoticed() {
    let (bytes, _) = segment(&[&[b"first", b"second"]]);
    assert_eq!(bytes.len(), 1024);
    assert_eq!(
        crate::message::hex(&sha256(&[&bytes])),
        "3c4fa633a89bf7bea58d21c5ce4fdb8457b5608594f29ee9b50f8b7b34c3ea38"
    );
    let (scan, _) = scan_bytes(&bytes, true).unwrap();
    assert_eq!(
        crate::message::hex(&scan.end.chain),
        "261317e4e4171241a7fbf724b1279eaae861e3d843ed95acba2a35414ddff5ae",
        "the same chain as the first release's journal of the same records"
    );
}

#[test]
fn every_tear_of_the_last_batch_cuts_all_of_it_and_keeps_the_batches_before() {
    let (full, offsets) = segment(&[&[b"kept"], &[&long(1), &long(2), &long(3)]]);
    let last = offsets[1] as usize;
    let sectors = (full.len() - last) / 512;
    assert!(sectors >= 2, "the last batch spans several sectors");
    for pattern in 0..(1u32 << sectors) - 1 {
        let mut torn = full[..last].to_vec();
        torn.resize(full.len() + 4096, 0);
        for sector in 0..sectors {
            if pattern & (1 << sector) != 0 {
                let at = last + sector * 512;
                torn[at..at + 512].copy_from_slice(&full[at..at + 512]);
            }
        }
        let (scan, seen) = scan_bytes(&torn, true).unwrap_or_else(|err| panic!("pattern {pattern:b}: {err}"));
        assert_eq!(seen.len(), 1, "pattern {pattern:b}: none of the torn batch is applied");
        let expected = (pattern != 0).then_some(last as u64);
        assert_eq!(
            scan.torn_at, expected,
            "pattern {pattern:b}: nothing persisted is a clean end"
        );
        assert_eq!(scan.end_offset, last as u64, "pattern {pattern:b}");
    }
    let (scan, seen) = scan_bytes(&full, true).unwrap();
    assert_eq!(
        (seen.len(), scan.torn_at),
        (4, None),
        "every sector persisted: a whole batch"
    );
}

#[test]
fn a_torn_batch_outside_the_newest_segment_is_damage() {
    let (full, offsets) = segment(&[&[b"kept"], &[&long(1), &long(2)]]);
    let mut torn = full.clone();
    torn[offsets[1] as usize + 512..].fill(0);
    assert_eq!(corrupt_offset(scan_bytes(&torn, false)), offsets[1]);
    assert!(scan_bytes(&torn, true).is_ok());
}

#[test]
fn a_flipped_byte_in_any_sector_of_the_last_complete_batch_is_damage_not_a_tear() {
    let (full, offsets) = segment(&[&[b"kept"], &[&long(1), &long(2)]]);
    for at in offsets[1] as usize..full.len() {
        let mut damaged = full.clone();
        damaged[at] ^= 0x04;
        assert_eq!(corrupt_offset(scan_bytes(&damaged, true)), offsets[1], "flip at {at}");
    }
}

#[test]
fn a_flipped_byte_in_an_earlier_batch_is_damage_naming_that_batch() {
    let (full, offsets) = segment(&[&[b"first"], &[b"second"], &[b"third"]]);
    let mut damaged = full;
    damaged[offsets[1] as usize + BATCH_HEADER_BYTES + 5] ^= 0x01;
    assert_eq!(corrupt_offset(scan_bytes(&damaged, true)), offsets[1]);
}

#[test]
fn a_zeroed_earlier_batch_is_damage_because_data_follows_beyond_its_reach() {
    let many: Vec<Vec<u8>> = (0..3000u32).map(|n| n.to_be_bytes().to_vec()).collect();
    let refs: Vec<&[u8]> = many.iter().map(Vec::as_slice).collect();
    let mut batches: Vec<&[&[u8]]> = vec![&[b"first"]];
    batches.extend(refs.chunks(1));
    let (full, offsets) = segment(&batches);
    let mut damaged = full;
    let second = offsets[1] as usize;
    damaged[second..second + 512].fill(0);
    assert_eq!(corrupt_offset(scan_bytes(&damaged, true)), offsets[1]);
}

#[test]
fn data_beyond_the_reach_of_a_torn_last_batch_is_damage() {
    let (full, offsets) = segment(&[&[b"kept"], &[&long(1), &long(2)]]);
    let last = offsets[1] as usize;
    let mut bytes = full.clone();
    bytes[last + 512..].fill(0);
    bytes.resize(full.len() + 4096, 0);
    assert!(scan_bytes(&bytes, true).is_ok(), "a tear with zeros after it");
    bytes[full.len() + 100] = 1;
    assert_eq!(corrupt_offset(scan_bytes(&bytes, true)), offsets[1]);
    // Far past the first 64 KiB read of the zeros, still damage.
    bytes[full.len() + 100] = 0;
    bytes.resize(full.len() + 200_000, 0);
    bytes[full.len() + 150_000] = 1;
    assert_eq!(corrupt_offset(scan_bytes(&bytes, true)), offsets[1]);
}

#[test]
fn a_lost_header_sector_reaches_as_far_as_the_largest_batch_and_no_further() {
    let (full, offsets) = segment(&[&[b"kept"], &[&long(1), &long(2)]]);
    let last = offsets[1] as usize;
    let mut bytes = full;
    bytes[last..last + 512].fill(0);
    bytes.resize(last + MAX_BATCH_BYTES + 1024, 0);
    let (scan, seen) = scan_bytes(&bytes, true).unwrap();
    assert_eq!((scan.torn_at, seen.len()), (Some(last as u64), 1));
    bytes[last + MAX_BATCH_BYTES - 1] = 1;
    assert!(scan_bytes(&bytes, true).is_ok(), "the last byte a batch can reach");
    bytes[last + MAX_BATCH_BYTES] = 1;
    assert_eq!(corrupt_offset(scan_bytes(&bytes, true)), offsets[1]);
    assert!(scan_bytes(&bytes, false).is_err());
}

#[test]
fn a_batch_out_of_sequence_is_damage_even_with_a_valid_checksum() {
    let (mut bytes, _) = segment(&[&[b"one"]]);
    let mut body = Vec::new();
    encode_record(&genesis_chain(), b"two", &mut body);
    encode_batch(5, 1, &body, &mut bytes);
    bytes.extend_from_slice(&[0u8; 512]);
    assert_eq!(corrupt_offset(scan_bytes(&bytes, true)), 1024);
}

#[test]
fn a_record_of_exactly_the_largest_length_is_read_and_a_batch_that_claims_more_is_refused() {
    let largest = vec![9u8; MAX_JOURNAL_RECORD_BYTES];
    let (bytes, _) = segment(&[&[&largest]]);
    let (scan, seen) = scan_bytes(&bytes, true).unwrap();
    assert_eq!((scan.end.lsn, seen[0].1.len()), (1, MAX_JOURNAL_RECORD_BYTES));
    let mut over = bytes.clone();
    let length_at = 512 + BATCH_HEADER_BYTES;
    over[length_at..length_at + 4].copy_from_slice(&u32::try_from(MAX_JOURNAL_RECORD_BYTES + 1).unwrap().to_be_bytes());
    assert_eq!(corrupt_offset(scan_bytes(&over, true)), 512);
}

#[test]
fn split_records_refuses_lengths_at_and_past_the_limits() {
    let mut body = Vec::new();
    let chain = encode_record(&genesis_chain(), &[1u8; MAX_JOURNAL_RECORD_BYTES], &mut body);
    assert!(split_records(&body, 1, &genesis_chain()).is_ok());
    assert!(
        split_records(&body, 2, &genesis_chain()).is_err(),
        "one record too many"
    );
    let mut zero_length = vec![0u8; 4];
    zero_length.extend_from_slice(&chain);
    assert!(split_records(&zero_length, 1, &genesis_chain()).is_err());
    let mut trailing = body.clone();
    trailing.push(0);
    assert!(split_records(&trailing, 1, &genesis_chain()).is_err());
}

#[test]
fn a_batch_header_that_claims_more_than_the_largest_batch_is_refused() {
    let (mut bytes, _) = segment(&[&[b"one"]]);
    let too_long = u32::try_from(MAX_BATCH_BYTES - BATCH_HEADER_BYTES + 1).unwrap();
    bytes[512 + 8..512 + 12].copy_from_slice(&too_long.to_be_bytes());
    assert_eq!(corrupt_offset(scan_bytes(&bytes, true)), 512);
}

#[test]
fn segment_headers_round_trip_and_a_zero_header_is_an_unstarted_segment() {
    let base = Position { lsn: 7, chain: [3; 32] };
    let header = encode_segment_header(4, &base);
    assert_eq!(decode_segment_header(&header), Ok(Some((4, base))));
    assert_eq!(decode_segment_header(&[0u8; 512]), Ok(None));
    for at in [0, 9, 17, 30, 60, 100, 511] {
        let mut damaged = header.clone();
        damaged[at] ^= 1;
        assert!(decode_segment_header(&damaged).is_err(), "flip at {at}");
    }
    assert!(decode_segment_header(&header[..511]).is_err());
}

#[test]
fn segment_names_round_trip_and_other_names_are_not_segments() {
    assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
    assert_eq!(segment_name(42), "journal-0000000042.seg");
    for other in [
        "journal-42.seg",
        "journal-00000000x2.seg",
        "journal.log",
        "journal-0000000042.seg.tmp",
    ] {
        assert_eq!(parse_segment_name(other), None, "{other}");
    }
}

#[test]
fn a_batch_is_padded_to_whole_sectors_with_a_non_zero_byte() {
    let mut body = Vec::new();
    encode_record(&genesis_chain(), b"x", &mut body);
    let mut out = Vec::new();
    encode_batch(1, 1, &body, &mut out);
    assert_eq!(out.len(), 512);
    assert!(out[BATCH_HEADER_BYTES + body.len()..].iter().all(|&b| b == PAD_BYTE));
}

#[test]
fn a_lost_header_followed_by_an_intact_batch_header_within_reach_is_damage() {
    let (full, offsets) = segment(&[&[b"kept"], &[&long(1), &long(2)], &[b"later"]]);
    let mut bytes = full;
    bytes[offsets[1] as usize..offsets[1] as usize + 512].fill(0);
    // Preallocated zeros after the later batch, as on a real segment.
    bytes.resize(bytes.len() + 4096, 0);
    assert_eq!(corrupt_offset(scan_bytes(&bytes, true)), offsets[1]);
}

#[test]
fn a_file_that_ends_inside_a_batch_header_is_a_torn_last_batch() {
    let (full, offsets) = segment(&[&[b"kept"], &[b"cut"]]);
    for cut in [1, 20, BATCH_HEADER_BYTES - 1, BATCH_HEADER_BYTES + 3] {
        let bytes = &full[..offsets[1] as usize + cut];
        let (scan, seen) = scan_bytes(bytes, true).unwrap_or_else(|err| panic!("cut {cut}: {err}"));
        assert_eq!((scan.torn_at, seen.len()), (Some(offsets[1]), 1), "cut {cut}");
    }
}

/// A batch header whose own checksum is valid, with any fields (the body checksum is junk).
fn forged_header(records: u32, body_len: u32, first_lsn: u64) -> Vec<u8> {
    let mut header = BATCH_MAGIC.to_vec();
    header.extend_from_slice(&records.to_be_bytes());
    header.extend_from_slice(&body_len.to_be_bytes());
    header.extend_from_slice(&first_lsn.to_be_bytes());
    header.extend_from_slice(&[0x11; 32]);
    let checksum = sha256(&[&header]);
    header.extend_from_slice(&checksum);
    header
}

/// Segment 1 with `header` where its first batch goes, then zeros.
fn segment_with_header(header: &[u8]) -> Vec<u8> {
    let mut bytes = encode_segment_header(1, &Position::genesis());
    bytes.extend_from_slice(header);
    bytes.resize(bytes.len() + 4096, 0);
    bytes
}

#[test]
fn an_intact_header_with_impossible_fields_is_damage_not_a_tear() {
    let largest_body = u32::try_from(MAX_BATCH_BYTES - BATCH_HEADER_BYTES).unwrap();
    for (records, body_len) in [(0, 1_000), (1, 0), (1, largest_body + 1), (u32::MAX, u32::MAX)] {
        let bytes = segment_with_header(&forged_header(records, body_len, 1));
        assert_eq!(
            corrupt_offset(scan_bytes(&bytes, true)),
            512,
            "{records} records, {body_len} body bytes"
        );
    }
}

#[test]
fn an_intact_header_of_the_largest_batch_whose_body_never_arrived_is_a_torn_batch() {
    let largest_body = u32::try_from(MAX_BATCH_BYTES - BATCH_HEADER_BYTES).unwrap();
    let bytes = segment_with_header(&forged_header(1, largest_body, 1));
    let (scan, seen) = scan_bytes(&bytes, true).unwrap();
    assert_eq!((scan.torn_at, seen.len()), (Some(512), 0));
}

#[test]
fn a_zero_length_record_is_refused_even_with_a_matching_chain_value() {
    let mut body = vec![0u8; 4];
    body.extend_from_slice(&next_chain(&genesis_chain(), b""));
    assert!(split_records(&body, 1, &genesis_chain()).is_err());
}
