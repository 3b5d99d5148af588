#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wif_push_fuzz::aws_xml(data));
