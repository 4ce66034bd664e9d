import SluiceCLI
import SluiceJobs

SluiceMain.main(jobs: SluiceJobs.all)
