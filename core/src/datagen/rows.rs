//! One chunk of taxi rows: values drawn from the chunk's own PRNG streams, formatted by hand.
//!
//! Two streams per chunk: `values` draws every clean field, `defects` decides which rows are
//! dirty and how. Keeping them apart means `--dirty 0.01` changes only the dirty rows, not the
//! whole file, which makes dirty output easy to compare with clean output when debugging a parser.

use super::Defects;
use super::fmt::{push_cents, push_f32_17g, push_hundredths, push_u64, two};
use super::rng::Rng;

/// Stream ids mixed into the chunk seed.
const STREAM_VALUES: u64 = 1;
const STREAM_DEFECTS: u64 = 2;

/// Cumulative weights of payment_type 1..5: the real 2015–16 counts.
const PAYMENT_CUM: [u64; 5] = {
    let w = super::REAL_PAYMENT_TYPE_COUNTS;
    [
        w[0],
        w[0] + w[1],
        w[0] + w[1] + w[2],
        w[0] + w[1] + w[2] + w[3],
        w[0] + w[1] + w[2] + w[3] + w[4],
    ]
};

/// Cumulative passenger_count 1..6 shares (per mille), roughly the 2015 files'.
const PASSENGER_CUM: [u64; 6] = [705, 847, 888, 908, 964, 1000];

/// Cumulative pickups per hour of day (relative), the 2015 weekday/weekend mix.
const HOUR_CUM: [u64; 24] = {
    let w: [u64; 24] = [
        39, 29, 22, 16, 12, 10, 21, 35, 43, 44, 43, 44, 47, 47, 49, 47, 42, 50, 60, 62, 56, 54, 52,
        46,
    ];
    let mut c = [0u64; 24];
    let mut acc = 0;
    let mut i = 0;
    while i < 24 {
        acc += w[i];
        c[i] = acc;
        i += 1;
    }
    c
};

/// Pickup neighbourhoods (lat, lon, cumulative weight): Midtown, downtown, Upper East/West.
const CENTERS: [(f64, f64, u64); 4] = [
    (40.7580, -73.9855, 45),
    (40.7233, -73.9990, 70),
    (40.7736, -73.9566, 85),
    (40.7870, -73.9754, 100),
];
const JFK: (f64, f64) = (40.6446, -73.7824);
const LGA: (f64, f64) = (40.7740, -73.8720);

/// Degrees per mile in New York.
const LAT_PER_MILE: f64 = 1.0 / 69.0;
const LON_PER_MILE: f64 = 1.0 / 52.4;

/// What a dirty row gets; one defect per dirty row.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Defect {
    None,
    QuotedComma,
    DoubledQuote,
    EmbeddedNewline,
    Crlf,
    TooFewFields,
    TooManyFields,
    NonNumericAmount,
    QuotedPaymentType,
}

const DEFECT_KINDS: [Defect; 8] = [
    Defect::QuotedComma,
    Defect::DoubledQuote,
    Defect::EmbeddedNewline,
    Defect::Crlf,
    Defect::TooFewFields,
    Defect::TooManyFields,
    Defect::NonNumericAmount,
    Defect::QuotedPaymentType,
];

/// store_and_fwd_flag values a messy export produces; each is one RFC 4180 field. Each kind
/// has only its own oddity (commas, quotes or a line break), so a test can tell them apart.
const FLAG_WITH_COMMAS: [&[u8]; 3] = [b"\"N, stored, forwarded\"", b"\"Y,held\"", b"\"N,,\""];
const FLAG_WITH_QUOTES: [&[u8]; 3] = [
    b"\"N \"\"manual\"\" entry\"",
    b"\"\"\"Y\"\"\"",
    b"\"N\"\"held\"\"\"",
];
const FLAG_WITH_LF: [&[u8]; 2] = [b"\"N\nsee note\"", b"\"Y\nheld\""];
const FLAG_WITH_CRLF: &[u8] = b"\"N\r\nsee note\"";
/// fare_amount texts that are not numbers (see the module doc of `datagen` for the definition).
const NON_NUMERIC: [&[u8]; 4] = [b"N/A", b"", b"12.5.1", b"$12.50"];
const EXTRA_FIELDS: [&[u8]; 3] = [b",", b",0", b",N"];

/// The calendar facts one file needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Month {
    /// `YYYY-MM-`
    prefix: [u8; 8],
    days: u32,
    /// Day of week of the 1st, 0 = Sunday.
    first_dow: u32,
}

impl Month {
    /// File 0 is 2015-01, file 12 is 2016-01, and so on.
    pub(crate) fn of_file(index: usize) -> Month {
        let year = 2015 + (index / 12) as u32;
        let month = (index % 12) as u32 + 1;
        let leap =
            (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
        let days = match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let mut prefix = [0u8; 8];
        let yh = two(year / 100);
        let yl = two(year % 100);
        let mm = two(month);
        prefix.copy_from_slice(&[yh[0], yh[1], yl[0], yl[1], b'-', mm[0], mm[1], b'-']);
        Month {
            prefix,
            days,
            first_dow: day_of_week(year, month, 1),
        }
    }

    pub(crate) fn label(&self) -> &str {
        // Built from ASCII digits and '-', so this cannot fail; "" only to avoid a panic path.
        std::str::from_utf8(&self.prefix[..7]).unwrap_or("")
    }

    fn secs(&self) -> u32 {
        self.days * 86_400
    }
}

/// Sakamoto's method; 0 = Sunday.
fn day_of_week(year: u32, month: u32, day: u32) -> u32 {
    const T: [u32; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
    let y = if month < 3 { year - 1 } else { year };
    (y + y / 4 - y / 100 + y / 400 + T[month as usize - 1] + day) % 7
}

/// What one chunk wrote, for `expected.json`.
#[derive(Clone, Debug, Default)]
pub(crate) struct ChunkStats {
    pub(crate) rows: u64,
    /// Records with 19 fields, by payment_type 1..5.
    pub(crate) payment: [u64; 5],
    /// fare_amount in cents over records with 19 fields and a numeric fare, by payment_type.
    pub(crate) fare_cents: [i64; 5],
    pub(crate) defects: Defects,
}

impl ChunkStats {
    pub(crate) fn add(&mut self, o: &ChunkStats) {
        self.rows += o.rows;
        for i in 0..5 {
            self.payment[i] += o.payment[i];
            self.fare_cents[i] += o.fare_cents[i];
        }
        self.defects.add(&o.defects);
    }
}

#[inline]
fn push_ts(buf: &mut Vec<u8>, month: &Month, sec_of_month: u32) {
    let day = sec_of_month / 86_400 + 1;
    let r = sec_of_month % 86_400;
    let (d, h, m, s) = (two(day), two(r / 3600), two(r / 60 % 60), two(r % 60));
    let p = &month.prefix;
    buf.extend_from_slice(&[
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], d[0], d[1], b' ', h[0], h[1], b':', m[0],
        m[1], b':', s[0], s[1], b',',
    ]);
}

#[inline]
fn push_coord_pair(buf: &mut Vec<u8>, lat_lon: Option<(f64, f64)>) {
    match lat_lon {
        // The 2015 layout is longitude first.
        Some((lat, lon)) => {
            push_f32_17g(buf, lon as f32);
            buf.push(b',');
            push_f32_17g(buf, lat as f32);
            buf.push(b',');
        }
        None => buf.extend_from_slice(b"0,0,"),
    }
}

/// Appends `rows` rows of chunk `chunk` of file `file` to `buf`.
pub(crate) fn fill_chunk(
    buf: &mut Vec<u8>,
    month: &Month,
    seed: u64,
    file: usize,
    chunk: u64,
    rows: u64,
    dirty_rate: f64,
) -> ChunkStats {
    let mut rng = Rng::from_parts(&[seed, file as u64, chunk, STREAM_VALUES]);
    let mut drng = Rng::from_parts(&[seed, file as u64, chunk, STREAM_DEFECTS]);
    let mut st = ChunkStats::default();
    let month_secs = month.secs();
    for _ in 0..rows {
        let defect = if dirty_rate > 0.0 && drng.chance(dirty_rate) {
            DEFECT_KINDS[drng.below(DEFECT_KINDS.len() as u64) as usize]
        } else {
            Defect::None
        };
        buf.reserve(256);
        let row_start = buf.len();

        let vendor = if rng.chance(0.53) { 2 } else { 1 };
        let airport = rng.chance(0.045);
        // Hundredths of a mile.
        let dist_h: u64 = if rng.chance(0.005) {
            0
        } else if airport {
            900 + rng.below(1300)
        } else {
            let miles = (0.47 + 0.78 * rng.normal()).exp();
            ((miles * 100.0).round() as u64).clamp(1, 4000)
        };
        let rate_code: u64 = if airport {
            if rng.chance(0.5) { 2 } else { 1 }
        } else {
            match rng.below(10_000) {
                0..35 => 5,
                35..55 => 3,
                55..60 => 4,
                _ => 1,
            }
        };
        let median_mph = if airport { 19.0 } else { 11.0 };
        let mph = (median_mph * (0.35 * rng.normal()).exp()).clamp(2.0, 50.0);
        let dur = if dist_h == 0 {
            30 + rng.below(600) as u32
        } else {
            ((dist_h as f64 / 100.0 / mph * 3600.0) as u32 + 30 + rng.below(120) as u32)
                .clamp(30, 3 * 3600)
        };
        let day = rng.below(u64::from(month.days)) as u32;
        let hour = rng.pick(&HOUR_CUM) as u32;
        let mut pickup = day * 86_400 + hour * 3600 + rng.below(3600) as u32;
        if pickup + dur >= month_secs {
            pickup = month_secs - 1 - dur;
        }
        let dropoff = pickup + dur;
        let hour = pickup % 86_400 / 3600;
        let dow = (month.first_dow + pickup / 86_400) % 7;

        push_u64(buf, vendor);
        buf.push(b',');
        push_ts(buf, month, pickup);
        push_ts(buf, month, dropoff);
        push_u64(buf, rng.pick(&PASSENGER_CUM) as u64 + 1);
        buf.push(b',');
        if vendor == 1 && dist_h < 100 {
            // CMT's export drops the leading zero of sub-mile distances: `.50`.
            buf.push(b'.');
            buf.extend_from_slice(&two(dist_h as u32));
        } else {
            push_hundredths(buf, dist_h);
        }
        buf.push(b',');

        // Positions: ~1.8 % of rows have no GPS fix at all, ~0.2 % lose only the dropoff.
        let (no_pickup, no_dropoff) = match rng.below(1000) {
            0..18 => (true, true),
            18..20 => (false, true),
            _ => (false, false),
        };
        let i = rng.below(100);
        let town = CENTERS.iter().find(|c| i < c.2).unwrap_or(&CENTERS[0]);
        let town = (town.0 + 0.012 * rng.normal(), town.1 + 0.012 * rng.normal());
        let ((plat, plon), (dlat, dlon)) = if airport {
            let a = if rng.chance(0.6) { JFK } else { LGA };
            let a = (a.0 + 0.003 * rng.normal(), a.1 + 0.003 * rng.normal());
            if rng.chance(0.5) {
                (a, town)
            } else {
                (town, a)
            }
        } else {
            let theta = std::f64::consts::TAU * rng.unit();
            // Streets are not straight lines: the displacement is shorter than the metered
            // distance.
            let straight = dist_h as f64 / 100.0 / 1.3;
            let dropoff = (
                town.0 + straight * LAT_PER_MILE * theta.sin(),
                town.1 + straight * LON_PER_MILE * theta.cos(),
            );
            (town, dropoff)
        };
        push_coord_pair(buf, (!no_pickup).then_some((plat, plon)));
        push_u64(buf, rate_code);
        buf.push(b',');

        let flag_y = rng.chance(0.009);
        match defect {
            Defect::QuotedComma => {
                buf.extend_from_slice(FLAG_WITH_COMMAS[drng.below(3) as usize]);
            }
            Defect::DoubledQuote => {
                buf.extend_from_slice(FLAG_WITH_QUOTES[drng.below(3) as usize]);
            }
            Defect::EmbeddedNewline => {
                if drng.chance(1.0 / 3.0) {
                    buf.extend_from_slice(FLAG_WITH_CRLF);
                } else {
                    buf.extend_from_slice(FLAG_WITH_LF[drng.below(2) as usize]);
                }
            }
            _ => buf.push(if flag_y { b'Y' } else { b'N' }),
        }
        buf.push(b',');
        push_coord_pair(buf, (!no_dropoff).then_some((dlat, dlon)));

        let pt = rng.pick(&PAYMENT_CUM);
        if defect == Defect::QuotedPaymentType {
            buf.extend_from_slice(&[b'"', b'1' + pt as u8, b'"', b',']);
        } else {
            buf.extend_from_slice(&[b'1' + pt as u8, b',']);
        }

        let fare: i64 = match rate_code {
            2 => 5200,
            5 => 1000 + 100 * rng.below(70) as i64,
            _ => {
                // 2015 meter: $2.50 flag drop, 50 cents per 1/5 mile or per minute stopped.
                let fifths = (dist_h * 5).div_ceil(100);
                let stopped = rng.below(u64::from(dur / 180) + 1);
                let newark = if rate_code == 3 { 1500 } else { 0 };
                250 + 50 * (fifths + stopped) as i64 + newark
            }
        };
        let extra: i64 = if !(6..20).contains(&hour) {
            50
        } else if (16..20).contains(&hour) && (1..=5).contains(&dow) {
            100
        } else {
            0
        };
        let mta: i64 = if rng.chance(0.005) { 0 } else { 50 };
        let surcharge: i64 = if rng.chance(0.002) { 0 } else { 30 };
        let tolls: i64 = if rng.chance(if airport { 0.5 } else { 0.03 }) {
            554
        } else {
            0
        };
        let mut tip: i64 = 0;
        if pt == 0 && rng.chance(0.92) {
            let pct = 0.12 + 0.18 * rng.unit();
            tip = ((fare + extra) as f64 * pct).round() as i64;
            match rng.below(100) {
                // A whole-dollar tip typed in by hand.
                0..40 => tip = ((tip + 50) / 100).max(1) * 100,
                // The total rounded up to whole dollars.
                40..65 => {
                    let before = fare + extra + mta + surcharge + tolls + tip;
                    tip += (100 - before % 100) % 100;
                }
                // A percentage button on the screen.
                _ => {}
            }
        }
        let total = fare + extra + mta + tip + tolls + surcharge;

        if defect == Defect::NonNumericAmount {
            buf.extend_from_slice(NON_NUMERIC[drng.below(NON_NUMERIC.len() as u64) as usize]);
        } else {
            push_cents(buf, fare);
        }
        buf.push(b',');
        push_cents(buf, extra);
        buf.push(b',');
        push_cents(buf, mta);
        buf.push(b',');
        push_cents(buf, tip);
        buf.push(b',');
        push_cents(buf, tolls);
        buf.push(b',');
        push_cents(buf, surcharge);
        buf.push(b',');
        push_cents(buf, total);

        match defect {
            Defect::TooManyFields => {
                for _ in 0..=drng.below(3) {
                    buf.extend_from_slice(EXTRA_FIELDS[drng.below(3) as usize]);
                }
                buf.push(b'\n');
            }
            Defect::TooFewFields => {
                // Cut after 2..=18 fields; the row has no quotes, so every comma separates.
                let keep = 2 + drng.below(17) as usize;
                let cut = memchr::memchr_iter(b',', &buf[row_start..])
                    .nth(keep - 1)
                    .map_or(buf.len(), |p| row_start + p);
                buf.truncate(cut);
                buf.push(b'\n');
            }
            Defect::Crlf => buf.extend_from_slice(b"\r\n"),
            _ => buf.push(b'\n'),
        }

        st.rows += 1;
        match defect {
            Defect::None => {}
            Defect::QuotedComma => st.defects.quoted_comma += 1,
            Defect::DoubledQuote => st.defects.doubled_quote += 1,
            Defect::EmbeddedNewline => st.defects.embedded_newline += 1,
            Defect::Crlf => st.defects.crlf += 1,
            Defect::TooFewFields => st.defects.too_few_fields += 1,
            Defect::TooManyFields => st.defects.too_many_fields += 1,
            Defect::NonNumericAmount => st.defects.non_numeric_amount += 1,
            Defect::QuotedPaymentType => st.defects.quoted_payment_type += 1,
        }
        match defect {
            Defect::TooFewFields | Defect::TooManyFields => {}
            Defect::NonNumericAmount => st.payment[pt] += 1,
            _ => {
                st.payment[pt] += 1;
                st.fare_cents[pt] += fare;
            }
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_weekdays() {
        let jan = Month::of_file(0);
        assert_eq!(&jan.prefix, b"2015-01-");
        assert_eq!(jan.days, 31);
        assert_eq!(jan.first_dow, 4, "2015-01-01 was a Thursday");
        assert_eq!(Month::of_file(13).label(), "2016-02");
        assert_eq!(Month::of_file(13).days, 29);
        assert_eq!(Month::of_file(1).days, 28);
        assert_eq!(
            Month::of_file(12 * 85 + 1).days,
            28,
            "2100 is not a leap year"
        );
    }

    #[test]
    fn a_clean_chunk_has_19_fields_per_line() {
        let mut buf = Vec::new();
        let st = fill_chunk(&mut buf, &Month::of_file(0), 42, 0, 0, 2000, 0.0);
        assert_eq!(st.rows, 2000);
        assert_eq!(st.payment.iter().sum::<u64>(), 2000);
        let text = String::from_utf8(buf).unwrap_or_default();
        assert_eq!(text.lines().count(), 2000);
        for line in text.lines() {
            assert_eq!(line.split(',').count(), 19, "{line}");
        }
    }
}
