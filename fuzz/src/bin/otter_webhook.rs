//! AFL++ target `otter_webhook`: each test case through `kitchen_fuzz::otter_webhook` (docs/fuzzing.md).

fn main() {
    afl::fuzz!(|data: &[u8]| kitchen_fuzz::otter_webhook(data));
}
