import SluiceCLI
import SluiceJobs

SluiceMain.main(jobs: SluiceJobs.all, streamJobs: StreamJobs.all)
