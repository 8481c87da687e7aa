//! Property tests: the contract's parsers and the planner never panic, whatever the input, and
//! what they accept is consistent (round trips, plans that cover the image exactly once).

use proptest::prelude::*;
use tessera_shard::contract::{MergeSpec, ShardSpec};
use tessera_shard::{AttemptMap, FrameList, IndexSet, PlanInput, ShardPlan};

/// Text that looks like the syntaxes (digits, separators) mixed with anything at all.
fn list_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[-0-9x, :]{0,40}",
        "[0-9]{1,12}(-[0-9]{1,12}(x[0-9]{1,4})?)?(,[0-9]{1,12}(-[0-9]{1,12})?){0,4}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        // Failures print their minimal input; nothing is written into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn frame_lists_parse_or_name_the_problem(text in list_like()) {
        match FrameList::parse(&text) {
            Ok(list) => {
                prop_assert!(!list.is_empty() && list.len() <= tessera_shard::frames::MAX_FRAMES);
                prop_assert!(list.nth(list.len() - 1).is_some());
                prop_assert!(list.nth(list.len()).is_none());
                // The written form parses to the same frames (a one-frame range may lose its
                // step: `0-0x2` is written `0`).
                let again = FrameList::parse(&list.to_string()).unwrap();
                prop_assert_eq!(again.len(), list.len());
                for position in [0, list.len() / 2, list.len() - 1] {
                    prop_assert_eq!(again.nth(position), list.nth(position));
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn index_sets_round_trip(text in list_like()) {
        match IndexSet::parse(&text) {
            Ok(set) => prop_assert_eq!(IndexSet::parse(&set.to_string()).unwrap(), set),
            Err(e) => prop_assert!(e.to_string().contains(&text), "{}", e),
        }
    }

    #[test]
    fn index_set_difference_and_ranges_agree_with_a_plain_set(
        a in proptest::collection::btree_set(0u32..64, 0..40),
        b in proptest::collection::btree_set(0u32..64, 0..40),
        low in 0u32..64,
        width in 0u32..8,
    ) {
        let (set_a, set_b): (IndexSet, IndexSet) =
            (a.iter().copied().collect(), b.iter().copied().collect());
        let expected: IndexSet = a.difference(&b).copied().collect();
        prop_assert_eq!(set_a.difference(&set_b), expected);
        let high = low + width;
        prop_assert_eq!(set_a.contains_range(low, high), (low..=high).all(|i| a.contains(&i)));
    }

    #[test]
    fn attempt_maps_round_trip(text in list_like()) {
        match AttemptMap::parse(&text) {
            Ok(map) => prop_assert_eq!(AttemptMap::parse(&map.to_string()).unwrap(), map),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn plans_cover_every_pixel_and_sample_once(
        frames in "[0-9]{1,3}(-[0-9]{1,4})?",
        width in 0u32..=70_000,
        height in 0u32..=70_000,
        samples_per_pixel in 0u32..=2_000_000,
        frames_per_shard in 0u32..=20_000,
        tiles_x in 0u32..=300,
        tiles_y in 0u32..=300,
        sample_splits in 0u32..=2_000,
        probe in any::<u32>(),
    ) {
        let Ok(frames) = FrameList::parse(&frames) else { return Ok(()) };
        let input = PlanInput {
            frames, width, height, samples_per_pixel, frames_per_shard, tiles_x, tiles_y,
            sample_splits,
        };
        let Ok(plan) = ShardPlan::new(input) else { return Ok(()) };
        prop_assert!(u64::from(plan.len()) <= tessera_shard::plan::MAX_SHARDS);
        let shard = plan.shard(probe % plan.len()).unwrap();
        prop_assert!(u64::from(shard.tile.x) + u64::from(shard.tile.width) <= u64::from(width));
        prop_assert!(u64::from(shard.tile.y) + u64::from(shard.tile.height) <= u64::from(height));
        prop_assert!(shard.tile.width >= 1 && shard.tile.height >= 1);
        prop_assert!(shard.samples.count >= 1);
        prop_assert!(plan.shard(plan.len()).is_none());
        // The tiles of one frame chunk and one sample split cover the image exactly.
        let area: u64 = plan
            .shards_of_chunk(0)
            .filter_map(|i| plan.shard(i))
            .filter(|s| s.samples.start == 0)
            .map(|s| s.tile.pixel_count())
            .sum();
        prop_assert_eq!(area, u64::from(width) * u64::from(height));
    }

    #[test]
    fn specs_from_any_text_are_parsed_or_refused(text in any::<String>()) {
        let _ = serde_json::from_str::<ShardSpec>(&text);
        let _ = serde_json::from_str::<MergeSpec>(&text);
    }

    #[test]
    fn merge_specs_with_any_values_deserialize_or_fail_cleanly(
        tiles_x in any::<i64>(),
        frames in list_like(),
        attempts in list_like(),
        width in any::<i64>(),
    ) {
        let mut spec: serde_json::Value =
            serde_json::from_str(include_str!("../fixtures/merge-spec.json")).unwrap();
        spec["tilesX"] = tiles_x.into();
        spec["frames"] = frames.into();
        spec["attempts"] = attempts.into();
        spec["settings"]["width"] = width.into();
        if let Ok(spec) = serde_json::from_value::<MergeSpec>(spec) {
            prop_assert_eq!(i64::from(spec.tiles_x), tiles_x);
            prop_assert_eq!(i64::from(spec.settings.width), width);
        }
    }
}
