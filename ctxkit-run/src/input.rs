//! Where the jobs' arguments come from: the `:::` lists (their cross product, made one
//! combination at a time from its index) or stdin (one argument per line, read by a thread of
//! its own a bounded number of lines ahead of the jobs). Either way the run holds only the
//! jobs in flight, so its memory does not grow with the number of jobs; only `--bar`,
//! `fail=P%` and `--resume` need every job known first, and [`Source::collect`] reads them all.

use std::io::BufRead;

use tokio::sync::mpsc;

/// How many stdin lines the reader thread keeps ahead of the jobs.
const READ_AHEAD: usize = 1024;

/// The jobs' arguments, one `Vec` (one argument per `:::` list, or the stdin line) per job.
#[derive(Debug)]
pub(crate) enum Source {
    /// The cross product of the lists, the first list varying slowest.
    Lists {
        lists: Vec<Vec<String>>,
        next: usize,
        total: usize,
    },
    /// Lines of stdin, from the reader thread; `Err` when stdin could not be read.
    Stdin(mpsc::Receiver<Result<String, String>>),
    /// Every job, read already.
    Collected(std::vec::IntoIter<Vec<String>>),
}

impl Source {
    /// The cross product of `lists`.
    ///
    /// # Errors
    ///
    /// A message when the product has more combinations than a `usize` holds.
    pub(crate) fn lists(lists: Vec<Vec<String>>) -> Result<Source, String> {
        let total = lists
            .iter()
            .try_fold(1usize, |n, list| n.checked_mul(list.len()))
            .ok_or("the ::: lists have more combinations than ctxrun can count")?;
        Ok(Source::Lists {
            lists,
            next: 0,
            total,
        })
    }

    /// Lines of stdin, read by a thread started here. Call within the tokio runtime.
    pub(crate) fn stdin() -> Source {
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        // The thread ends at the end of stdin, or when the run is over (its sends fail); a
        // read blocked on stdin when ctxrun exits ends with the process.
        std::thread::Builder::new()
            .name("ctxrun-stdin".into())
            .spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    let item = line.map_err(|err| format!("cannot read stdin: {err}"));
                    let failed = item.is_err();
                    if tx.blocking_send(item).is_err() || failed {
                        return;
                    }
                }
            })
            .map(|_| ())
            .unwrap_or_else(|err| eprintln!("ctxrun: cannot start the stdin reader: {err}"));
        Source::Stdin(rx)
    }

    /// The next job's arguments; `None` after the last.
    ///
    /// # Errors
    ///
    /// A message when stdin could not be read.
    pub(crate) async fn next(&mut self) -> Option<Result<Vec<String>, String>> {
        match self {
            Source::Lists { lists, next, total } => {
                if *next >= *total {
                    return None;
                }
                let mut index = *next;
                *next += 1;
                let mut args: Vec<String> = lists
                    .iter()
                    .rev()
                    .map(|list| {
                        let arg = list[index % list.len()].clone();
                        index /= list.len();
                        arg
                    })
                    .collect();
                args.reverse();
                Some(Ok(args))
            }
            Source::Stdin(rx) => rx.recv().await.map(|line| line.map(|l| vec![l])),
            Source::Collected(jobs) => jobs.next().map(Ok),
        }
    }

    /// Reads every job now.
    ///
    /// # Errors
    ///
    /// A message when stdin could not be read.
    pub(crate) async fn collect(mut self) -> Result<Vec<Vec<String>>, String> {
        let mut all = Vec::new();
        while let Some(job) = self.next().await {
            all.push(job?);
        }
        Ok(all)
    }

    /// How many jobs are left, reading stdin to its end (errors end the count).
    pub(crate) async fn count_rest(&mut self) -> usize {
        match self {
            Source::Lists { next, total, .. } => total.saturating_sub(*next),
            Source::Collected(jobs) => jobs.len(),
            Source::Stdin(rx) => {
                let mut count = 0;
                while let Some(Ok(_)) = rx.recv().await {
                    count += 1;
                }
                count
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn lists_make_the_cross_product_first_list_slowest() {
        let source = Source::lists(vec![strings(&["a", "b"]), strings(&["1", "2", "3"])]).unwrap();
        let all = source.collect().await.unwrap();
        let joined: Vec<String> = all.iter().map(|v| v.concat()).collect();
        assert_eq!(joined, ["a1", "a2", "a3", "b1", "b2", "b3"]);
    }

    #[tokio::test]
    async fn count_rest_counts_what_is_left() {
        let mut source = Source::lists(vec![strings(&["a", "b", "c"])]).unwrap();
        assert!(source.next().await.is_some());
        assert_eq!(source.count_rest().await, 2);
    }

    #[test]
    fn too_many_combinations_is_an_error() {
        let big: Vec<String> = (0..100_000).map(|i| i.to_string()).collect();
        assert!(Source::lists(vec![big; 5]).is_err());
    }
}
