use super::*;

fn rules(text: &str) -> Vec<Rule> {
    check(text).into_iter().map(|v| v.rule).collect()
}

#[test]
fn smoke() {
    assert!(passes("Isolate the sick birds and call your veterinarian."));
    assert_eq!(
        rules("Give oxytetracycline at 1 g per litre of water for 5 days."),
        [Rule::AntimicrobialWithoutVet]
    );
}
