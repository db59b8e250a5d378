//! Misuse that must not compile, each with the error the user sees.

#[test]
fn misuse_is_a_compile_error_pointing_at_the_user_code() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    // trybuild builds the cases with this crate's features: an `async fn`
    // slot is an error only without `async` (with it, tests/async_slots.rs).
    #[cfg(not(feature = "async"))]
    t.compile_fail("tests/ui_no_async/*.rs");
}
