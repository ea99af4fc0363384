//! Tests of metered runs: planning a call to fit the hold and the balance, and what the
//! budget pays for.

use super::*;

const P: ModelPrice = ModelPrice {
    input_per_1k: 2,
    output_per_1k: 8,
};

fn used(i: u64, o: u64) -> i128 {
    millicredits(P, i, o)
}

fn next(input: u64, max: u64, min: u64) -> NextCall {
    NextCall {
        input_tokens: input,
        max_output_tokens: max,
        min_output_tokens: min,
    }
}

#[test]
fn the_largest_output_is_the_most_the_budget_pays_for() {
    let cases = [
        // (used, input, budget, expected)
        (used(0, 0), 1000, 10, Some(1000)), // 2 + 8
        (used(0, 0), 1000, 9, Some(875)),   // 2 + 7
        (used(0, 0), 1000, 2, Some(0)),
        (used(0, 0), 1000, 1, None),
        (used(500, 125), 500, 10, Some(875)), // the used output counts against it
        (used(0, 0), 0, 0, None),
    ];
    for (u, input, budget, expected) in cases {
        let got = largest_output(P, u, input, budget);
        assert_eq!(got, expected, "{u} {input} {budget}");
        if let Some(out) = got {
            assert!(credits_for(P, u, input, out) <= budget.max(1));
            assert!(credits_for(P, u, input, out + 1) > budget || P.output_per_1k == 0);
        }
    }
    let free_output = ModelPrice {
        input_per_1k: 1,
        output_per_1k: 0,
    };
    assert_eq!(
        largest_output(free_output, used(0, 0), 10, 1),
        Some(u64::MAX)
    );
}

#[test]
fn a_call_is_planned_to_fit_the_hold_and_the_balance() {
    let cases = [
        // (used, held, available, next, expected)
        (
            used(0, 0),
            0,
            None,
            next(1000, 1000, 100),
            Plan::Call {
                output_tokens: 1000,
                top_up: 10,
            },
        ),
        (
            used(0, 0),
            20,
            None,
            next(1000, 1000, 100),
            Plan::Call {
                output_tokens: 1000,
                top_up: 0,
            },
        ),
        (
            used(0, 0),
            4,
            Some(4),
            next(1000, 1000, 100),
            Plan::Call {
                output_tokens: 750,
                top_up: 4,
            },
        ),
        (
            used(0, 0),
            0,
            Some(2),
            next(1000, 1000, 100),
            Plan::Short { needed: 3 },
        ),
        (
            used(1000, 100),
            4,
            Some(0),
            next(1000, 1000, 100),
            Plan::Short { needed: 2 },
        ),
        (
            used(1000, 100),
            6,
            Some(100),
            next(1000, 1000, 100),
            Plan::Call {
                output_tokens: 1000,
                top_up: 7,
            },
        ),
        (
            used(0, 0),
            0,
            Some(50),
            next(1000, 100, 500),
            Plan::Call {
                output_tokens: 100,
                top_up: 3,
            },
        ),
    ];
    for (u, held, available, n, expected) in cases {
        let plan = plan_call(P, u, held, available, n);
        assert_eq!(
            plan, expected,
            "{u} held {held} available {available:?} {n:?}"
        );
        if let Plan::Call {
            output_tokens,
            top_up,
        } = plan
        {
            assert!(credits_for(P, u, n.input_tokens, output_tokens) <= held + top_up);
            assert!(top_up <= available.unwrap_or(i64::MAX));
        }
    }
}
