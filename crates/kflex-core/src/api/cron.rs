//! Cron schedules as a CronJob's `spec.schedule` takes them (Kubernetes parses them with
//! robfig/cron's standard parser): five fields — minute, hour, day of month, month, day of week
//! — or one of the descriptors `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
//! `@midnight`, `@hourly`. A field is a list of `*`, a value or a range `a-b`, each with an
//! optional step `/n`; months and days of the week may be named (`jan`, `mon`), and `?` stands
//! for `*` in the day fields. Checked here so that `kflex render` refuses what the API server
//! would, with the field and the reason, instead of a CronJob that is never created.

const DESCRIPTORS: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names for the values from `min` on.
    names: &'static [&'static str],
    /// Whether `?` may stand for `*`.
    question: bool,
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        question: false,
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        question: false,
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
        question: true,
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
        question: false,
    },
    Field {
        name: "day of week",
        min: 0,
        max: 6,
        names: &DAYS,
        question: true,
    },
];

/// Why `schedule` is not a schedule a CronJob accepts, if it is not.
pub fn schedule_problem(schedule: &str) -> Option<String> {
    let quoted = super::names::quoted(schedule);
    if schedule.starts_with("TZ=") || schedule.starts_with("CRON_TZ=") {
        return Some(format!(
            "{quoted}: a time zone in the schedule is refused by Kubernetes; kflex's schedules \
             are in UTC"
        ));
    }
    if schedule.starts_with('@') {
        return (!DESCRIPTORS.contains(&schedule)).then(|| {
            format!(
                "{quoted} is not a cron descriptor; use five fields or one of {}",
                DESCRIPTORS.join(", ")
            )
        });
    }
    let fields: Vec<&str> = schedule.split(' ').filter(|f| !f.is_empty()).collect();
    if fields.len() != 5 || schedule.contains(['\t', '\n', '\r']) {
        return Some(format!(
            "{quoted} is not a cron schedule: it needs five fields separated by spaces (minute \
             hour day-of-month month day-of-week), like \"17 3 * * *\", or a descriptor like \
             @daily"
        ));
    }
    FIELDS
        .iter()
        .zip(fields)
        .find_map(|(field, text)| field_problem(field, text).map(|why| (field, text, why)))
        .map(|(field, text, why)| {
            format!(
                "{quoted}: the {} field {}: {why}",
                field.name,
                super::names::quoted(text)
            )
        })
}

fn field_problem(field: &Field, text: &str) -> Option<String> {
    for part in text.split(',') {
        if let Some(why) = part_problem(field, part) {
            return Some(why);
        }
    }
    None
}

fn part_problem(field: &Field, part: &str) -> Option<String> {
    let (range, step) = match part.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (part, None),
    };
    if let Some(step) = step {
        match step.parse::<u32>() {
            Ok(n) if n >= 1 => {}
            _ => {
                return Some(format!(
                    "the step {step:?} must be a whole number of at least 1"
                ));
            }
        }
    }
    if range == "*" || (field.question && range == "?") {
        return None;
    }
    let (low, high) = match range.split_once('-') {
        Some((low, high)) => (low, Some(high)),
        None => (range, None),
    };
    let low = match value(field, low) {
        Ok(v) => v,
        Err(why) => return Some(why),
    };
    if let Some(high) = high {
        let high = match value(field, high) {
            Ok(v) => v,
            Err(why) => return Some(why),
        };
        if high < low {
            return Some(format!("the range {range:?} ends before it starts"));
        }
    }
    None
}

fn value(field: &Field, text: &str) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(index) = field.names.iter().position(|name| *name == lower) {
        return Ok(field.min + u32::try_from(index).unwrap_or(0));
    }
    let allowed = if field.names.is_empty() {
        format!("{}-{}", field.min, field.max)
    } else {
        format!(
            "{}-{} or {}-{}",
            field.min,
            field.max,
            field.names[0],
            field.names[field.names.len() - 1]
        )
    };
    match text.parse::<u32>() {
        Ok(n) if (field.min..=field.max).contains(&n) && !text.starts_with('+') => Ok(n),
        _ => Err(format!("{text:?} is not a value of {allowed}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_kubernetes_accepts() {
        for good in [
            "17 3 * * *",
            "*/15 * * * *",
            "0 0-23/2 * * mon-fri",
            "0 4 1,15 * ?",
            "30 2 * jan,jul sun",
            "0 0 ? * 6",
            "@daily",
            "@hourly",
            "5  4 * * *",
        ] {
            assert_eq!(schedule_problem(good), None, "{good}");
        }
    }

    #[test]
    fn refuses_with_the_field_and_the_reason() {
        for (bad, says) in [
            ("61 * * * *", "the minute field \"61\""),
            ("0 24 * * *", "the hour field"),
            ("0 0 0 * *", "the day of month field"),
            ("0 0 * 13 *", "the month field"),
            ("0 0 * * 7", "the day of week field"),
            ("*/0 * * * *", "must be a whole number of at least 1"),
            ("5-1 * * * *", "ends before it starts"),
            ("* * * *", "needs five fields"),
            ("* * * * * *", "needs five fields"),
            ("@every 1h", "not a cron descriptor"),
            ("@fortnightly", "not a cron descriptor"),
            ("TZ=UTC 0 0 * * *", "time zone"),
            ("0 ? * * *", "the hour field"),
            ("daily", "needs five fields"),
        ] {
            let problem = schedule_problem(bad).unwrap_or_default();
            assert!(problem.contains(says), "{bad}: {problem}");
        }
    }
}
