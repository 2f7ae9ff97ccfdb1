//! AFL++ target `order_events`: each test case through `kitchen_fuzz::order_events` (docs/fuzzing.md).

fn main() {
    afl::fuzz!(|data: &[u8]| kitchen_fuzz::order_events(data));
}
