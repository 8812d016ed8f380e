use super::*;

const HANDSHAKE: &[u8] = b"RFB 003.008\n\x01\x01";

fn key(down: u8) -> Vec<u8> {
    vec![4, down, 0, 0, 0, 0, 0xff, 0x0d]
}

fn pointer(x: u16, y: u16) -> Vec<u8> {
    let mut m = vec![5, 1];
    m.extend_from_slice(&x.to_be_bytes());
    m.extend_from_slice(&y.to_be_bytes());
    m
}

fn update_request() -> Vec<u8> {
    vec![3, 1, 0, 0, 0, 0, 7, 128, 4, 56]
}

fn pixel_format() -> Vec<u8> {
    let mut m = vec![0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 0, 8, 16, 0, 0, 0];
    m.truncate(20);
    m
}

fn encodings(list: &[i32]) -> Vec<u8> {
    let mut m = vec![2, 0];
    m.extend_from_slice(&(list.len() as u16).to_be_bytes());
    for e in list {
        m.extend_from_slice(&e.to_be_bytes());
    }
    m
}

fn cut_text(text: &[u8]) -> Vec<u8> {
    let mut m = vec![6, 0, 0, 0];
    m.extend_from_slice(&(text.len() as u32).to_be_bytes());
    m.extend_from_slice(text);
    m
}

fn fence(payload: &[u8]) -> Vec<u8> {
    let mut m = vec![248, 0, 0, 0, 0, 0, 0, 1, payload.len() as u8];
    m.extend_from_slice(payload);
    m
}

/// Everything a session sends, and what the server must see of it.
fn session() -> (Vec<u8>, Vec<u8>) {
    let mut input = HANDSHAKE.to_vec();
    let mut expected = HANDSHAKE.to_vec();
    for (message, kept) in [
        (pixel_format(), true),
        (encodings(&[7, 1, 0, -223]), true),
        (update_request(), true),
        (key(1), false),
        (pointer(100, 200), false),
        (cut_text(b"secret clipboard"), false),
        (fence(b"abc"), true),
        (vec![150, 1, 0, 0, 0, 0, 7, 128, 4, 56], true),
        (vec![255, 0, 0, 1, 0, 0, 0, 0x61, 0, 0, 0, 30], false),
        (vec![251, 0, 0, 100, 0, 80, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 100, 0, 80, 0, 0, 0, 0], false),
        (vec![250, 0, 1, 2], false),
        (update_request(), true),
    ] {
        input.extend_from_slice(&message);
        if kept {
            expected.extend_from_slice(&message);
        }
    }
    (input, expected)
}

fn run(chunks: &[&[u8]]) -> Result<Vec<u8>, FilterError> {
    let mut filter = ViewOnlyFilter::new();
    let mut out = Vec::new();
    for chunk in chunks {
        filter.feed(chunk, &mut out)?;
    }
    Ok(out)
}

#[test]
fn input_messages_are_dropped_and_the_rest_passes_unchanged() {
    let (input, expected) = session();
    assert_eq!(run(&[&input]).unwrap(), expected);
}

#[test]
fn every_split_point_and_byte_by_byte_gives_the_same_output() {
    let (input, expected) = session();
    for at in 0..=input.len() {
        let (a, b) = input.split_at(at);
        assert_eq!(run(&[a, b]).unwrap(), expected, "split at {at}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(&bytes).unwrap(), expected);
    let threes: Vec<&[u8]> = input.chunks(3).collect();
    assert_eq!(run(&threes).unwrap(), expected);
}

#[test]
fn a_long_cut_text_is_skipped_across_frames_without_buffering() {
    let text = vec![b'x'; 100_000];
    let message = cut_text(&text);
    let mut filter = ViewOnlyFilter::new();
    let mut out = Vec::new();
    filter.feed(HANDSHAKE, &mut out).unwrap();
    for chunk in message.chunks(4096) {
        filter.feed(chunk, &mut out).unwrap();
        assert!(filter.pending.len() < 16, "the dropped text is not buffered");
    }
    filter.feed(&update_request(), &mut out).unwrap();
    assert_eq!(out, [HANDSHAKE, &update_request()].concat());
}

#[test]
fn extended_clipboard_with_a_negative_length_is_dropped_whole() {
    let mut message = vec![6, 0, 0, 0];
    message.extend_from_slice(&(-8i32).to_be_bytes());
    message.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 4]);
    let out = run(&[HANDSHAKE, &message, &update_request()]).unwrap();
    assert_eq!(out, [HANDSHAKE, &update_request()].concat());
}

#[test]
fn framing_pseudo_encodings_are_removed_from_set_encodings() {
    let out = run(&[HANDSHAKE, &encodings(&[16, -316, 7, -258, -224])]).unwrap();
    assert_eq!(&out[HANDSHAKE.len()..], &encodings(&[16, 7, -224])[..]);
}

#[test]
fn protocol_3_3_has_no_security_byte() {
    let input = [b"RFB 003.003\n".as_slice(), &[1], &key(1), &update_request()].concat();
    assert_eq!(run(&[&input]).unwrap(), [b"RFB 003.003\n".as_slice(), &[1], &update_request()].concat());
}

#[test]
fn bad_streams_are_refused() {
    assert_eq!(run(&[b"GET / HTTP/1.1\r\n"]), Err(FilterError::Version));
    assert_eq!(run(&[b"RFB 004.000\n"]), Err(FilterError::Version));
    assert_eq!(run(&[b"RFB 003.008\n\x02"]), Err(FilterError::Security(2)));
    assert_eq!(run(&[HANDSHAKE, &[99, 0, 0]]), Err(FilterError::UnknownMessage(99)));
    assert_eq!(run(&[HANDSHAKE, &[255, 1]]), Err(FilterError::UnknownQemuMessage(1)));
    // Incomplete input is no error: it waits.
    assert_eq!(run(&[b"RFB 003.0"]), Ok(Vec::new()));
    assert_eq!(run(&[HANDSHAKE, &[2, 0, 0, 5, 0, 0]]), Ok(HANDSHAKE.to_vec()));
}
