import Sluice

/// The example jobs compiled into the `sluice` binary.
public enum SluiceJobs {
    /// Every job, in the order `sluice jobs` lists them.
    public static var all: [Job] {
        [wordcount, topwords, invertedindex, eventsum, keyusers, carrierdelays, planedelays, joinJob, sortJob, linecount] + ConformanceJobs.all
    }
}
