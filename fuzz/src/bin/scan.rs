//! AFL++ target `scan`: each test case through `kitchen_fuzz::scan` (docs/fuzzing.md).

fn main() {
    afl::fuzz!(|data: &[u8]| kitchen_fuzz::scan(data));
}
